#include "server/instance_builder.h"

#include <algorithm>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/hash.h"
#include "common/status_macros.h"

namespace m3serve::server {
namespace {

v1::Image::Format FormatToProto(ImageFormat f) {
  switch (f) {
    case ImageFormat::kJpeg: return v1::Image::FORMAT_JPEG;
    case ImageFormat::kPng: return v1::Image::FORMAT_PNG;
    case ImageFormat::kGif: return v1::Image::FORMAT_GIF;
    case ImageFormat::kBmp: return v1::Image::FORMAT_BMP;
    case ImageFormat::kWebp: return v1::Image::FORMAT_WEBP;
    case ImageFormat::kTiff: return v1::Image::FORMAT_TIFF;
    default: return v1::Image::FORMAT_UNSPECIFIED;
  }
}

}  // namespace

std::string ChooseInstruction(const Dataset& dataset, const storage::Instance& x,
                              const BuildOptions& options) {
  std::string instruction = x.instruction;
  if (options.resample_instructions || instruction.empty()) {
    if (const auto* pool = dataset.Pool(x.group.task, x.group.lang)) {
      // Re-sampling draws per (seed, epoch); "as ingested" is stable: a row
      // without its own instruction always gets the same one from the pool.
      uint64_t h = options.resample_instructions
                       ? Hash64(absl::StrCat(x.Id(), "|", options.seed, "|", options.epoch))
                       : Hash64(absl::StrCat(x.Id(), "|as-ingested"));
      instruction = (*pool)[h % pool->size()];
    }
  }
  for (const auto& [name, value] : x.template_vars) {
    instruction = absl::StrReplaceAll(instruction, {{absl::StrCat("[", name, "]"), value}});
  }
  return instruction;
}

uint64_t EstimateInstanceBytes(const BuildOptions& b) {
  const uint64_t images = std::max<uint32_t>(1, b.max_images);
  switch (b.images) {
    case ImageMode::kNone: return 1 << 10;
    case ImageMode::kEncoded: return images * (256 << 10);
    default:
      return b.target.width && b.target.height ? images * b.target.width * b.target.height * 3
                                               : images * (1 << 20);
  }
}

std::vector<size_t> KeptImages(size_t n, uint32_t max_images, bool video) {
  std::vector<size_t> keep;
  if (max_images == 0 || n <= max_images) {
    for (size_t i = 0; i < n; ++i) keep.push_back(i);
  } else if (!video) {
    for (size_t i = 0; i < max_images; ++i) keep.push_back(i);
  } else {
    for (size_t i = 0; i < max_images; ++i) keep.push_back(i * n / max_images + n / (2 * max_images));
  }
  return keep;
}

absl::Status BuildInstance(const Dataset& dataset, const storage::Instance& x,
                           const BuildOptions& options, Metrics* metrics, v1::Instance* out) {
  out->set_id(x.Id());
  out->set_task(x.group.task);
  out->set_split(x.group.split);
  out->set_language(x.group.lang);
  out->set_instruction(ChooseInstruction(dataset, x, options));
  out->set_inputs(x.inputs);
  out->set_outputs(x.outputs);
  out->set_meta_json(x.meta_json);
  const storage::TaskInfo* task = dataset.Task(x.group.task);
  const bool video = task != nullptr && task->modality == storage::Modality::kVideo;
  if (task != nullptr) {
    out->set_license(task->license);
    out->set_source_dataset(task->source_dataset);
  }
  uint64_t decoded_bytes = 0;
  for (size_t i : KeptImages(x.images.size(), options.max_images, video)) {
    const Hash128& hash = x.images[i];
    auto meta = dataset.reader().GetImageMeta(hash);
    if (!meta.ok()) {
      return absl::DataLossError(absl::StrCat("instance ", x.Id(), " image ", i, " (", hash.Hex(),
                                              "): ", meta.status().message()));
    }
    v1::Image* img = out->add_images();
    img->set_content_hash(hash.Hex());
    if (options.images == ImageMode::kNone) {
      img->set_format(FormatToProto(meta->format));
      img->set_width(meta->width);
      img->set_height(meta->height);
      continue;
    }
    auto bytes = dataset.reader().GetImage(hash);
    if (!bytes.ok()) {
      return absl::DataLossError(absl::StrCat("instance ", x.Id(), " image ", i, " (", hash.Hex(),
                                              "): ", bytes.status().message()));
    }
    if (options.images == ImageMode::kEncoded) {
      img->set_format(FormatToProto(meta->format));
      img->set_width(meta->width);
      img->set_height(meta->height);
      *img->mutable_data() = std::move(*bytes);
      continue;
    }
    uint32_t out_w = 0, out_h = 0;
    OutputSize(meta->width, meta->height, options.target, &out_w, &out_h);
    const uint64_t pixels = uint64_t{out_w} * out_h;
    if (pixels > options.max_decoded_pixels) {
      return absl::FailedPreconditionError(absl::StrCat(
          "instance ", x.Id(), " image ", i, " would decode to ", out_w, " x ", out_h, " = ", pixels,
          " pixels, above the server's limit of ", options.max_decoded_pixels,
          " (--max-decoded-pixels): ask for images.width / images.height"));
    }
    decoded_bytes += pixels * 3;
    if (decoded_bytes > options.max_instance_bytes) {
      return absl::FailedPreconditionError(absl::StrCat(
          "instance ", x.Id(), " decodes to more than ", options.max_instance_bytes,
          " bytes, the largest message the server sends (--max-message-bytes): ask for a smaller "
          "images.width / images.height or images.max_images_per_instance"));
    }
    auto start = std::chrono::steady_clock::now();
    uint32_t w = 0, h = 0;
    absl::Status s = DecodeToRgb(*bytes, *meta, options.target, img->mutable_data(), &w, &h);
    if (!s.ok()) {
      return absl::DataLossError(absl::StrCat("instance ", x.Id(), " image ", i, " (", hash.Hex(),
                                              "): ", s.message()));
    }
    if (metrics != nullptr) {
      metrics->Decoded(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    img->set_format(v1::Image::FORMAT_RGB8);
    img->set_width(w);
    img->set_height(h);
    img->set_channels(3);
  }
  return absl::OkStatus();
}

}  // namespace m3serve::server
