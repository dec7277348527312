// Fuzz target: one JSONL row through simdjson and the task mappings (MapRow),
// as ingest runs it on every line of an M3IT file. The first input byte picks
// the mapping (coco, vqa-v2, ..., M3IT-80 join) and the 1-based line number;
// the rest is the line. Every line must be mapped into instances with images
// or rejected with InvalidArgument and a reason: no crash, no hang, no
// instance without an image. Image headers claiming more than 4 megapixels are
// refused (the decompression-bomb limit, lowered here).
// Seeds: fuzz/corpus/row_mapper_fuzzer.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/logging.h"
#include "ingest/row_mapper.h"

namespace m3serve::ingest {
namespace {

// A 2x2 PNG.
constexpr char kPng[] =
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGM8IafBwMDAxMDAwMDAAAANcgESOXKF8gAAAABJRU5ErkJggg==";

constexpr Mapping kMappings[] = {
    Mapping::kGeneric, Mapping::kCoco,    Mapping::kVqaV2,   Mapping::kOkvqa,
    Mapping::kAokvqa,  Mapping::kViquae,  Mapping::kVist,    Mapping::kSnliVe,
    Mapping::kImagenet, Mapping::kSs,     Mapping::kRephrased, Mapping::kTranslated,
};

struct World {
  TaskAux aux;
  EnglishRows english;
  ImageCheckOptions images;
};

const World& GetWorld() {
  static const World* world = [] {
    auto* w = new World;
    w->images.max_pixels = 4'000'000;
    w->aux.mapping = {"n01440764 tench, Tinca tinca", "n01443537 goldfish", "n01484850 great white shark"};
    w->aux.class_to_label = {{"Pushing something from left to right", "0"}, {"Holding something", "1"}};
    for (const auto& [c, l] : w->aux.class_to_label) w->aux.label_to_class[l] = c;
    auto image = DecodeImage(kPng, w->images);
    M3_CHECK(image.ok()) << image.status();
    w->english.rel_path = "data/vqa/vqa-v2/train.jsonl";
    w->english.by_line[1].images = {*image};
    w->english.by_line[2].images = {*image, *image};
    w->english.by_line[3].error = "line 3: bad base64";
    w->english.line_of_id = {{"q1", 1}, {"q2", 2}, {"7", 3}};
    return w;
  }();
  return *world;
}

}  // namespace
}  // namespace m3serve::ingest

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace m3serve::ingest;
  if (size == 0) return 0;
  const World& world = GetWorld();
  RowContext ctx;
  ctx.mapping = kMappings[data[0] % std::size(kMappings)];
  ctx.line = 1 + (data[0] >> 4) % 4;
  ctx.aux = &world.aux;
  ctx.english = &world.english;
  ctx.images = world.images;

  static simdjson::dom::parser parser;
  const simdjson::padded_string line(reinterpret_cast<const char*>(data + 1), size - 1);
  simdjson::dom::element row;
  if (parser.parse(line).get(row)) return 0;  // ingest rejects it as "not valid JSON"
  std::vector<DraftInstance> out;
  absl::Status s = MapRow(row, ctx, &out);
  if (s.ok()) {
    M3_CHECK(!out.empty()) << "a mapped row produced no instance";
    for (const DraftInstance& d : out) {
      M3_CHECK(!d.images.empty()) << "an instance without an image";
      for (const auto& image : d.images) {
        M3_CHECK(image != nullptr && !image->bytes.empty());
        M3_CHECK(uint64_t{image->meta.width} * image->meta.height <= world.images.max_pixels);
      }
    }
  } else {
    M3_CHECK(s.code() == absl::StatusCode::kInvalidArgument) << s;
    M3_CHECK(!s.message().empty());
  }
  return 0;
}
