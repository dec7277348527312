// File: ingest/row_mapper.h
//
// Turn one parsed JSONL row into instances: the per-task mappings of
// shared/docs/m3it-format.md §3 (coco one instance per caption, vqa-v2 and
// okvqa answer fallbacks, vist multi-image, snli-ve [HYPO], imagenet class
// names, ss labels, rephrased meta.* rows, M3IT-80 joins), with a generic
// mapping for tasks whose row keys are not known. Images are base64-decoded,
// checked and hashed here, on the worker threads.
#ifndef M3SERVE_INGEST_ROW_MAPPER_H_
#define M3SERVE_INGEST_ROW_MAPPER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <simdjson.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/hash.h"
#include "storage/types.h"

namespace m3serve::ingest {

// A decoded, checked image.
struct ImageBlob {
  Hash128 hash;
  storage::ImageMeta meta;
  std::string bytes;
};
using ImagePtr = std::shared_ptr<const ImageBlob>;

struct ImageCheckOptions {
  // Refuse images whose header claims more pixels than this (decompression
  // bombs). Default: 100 megapixels.
  uint64_t max_pixels = 100'000'000;
  // Also decode every image (OpenCV, reduced size) instead of checking the
  // header and trailer only. Default: false.
  bool full_decode = false;
};

// Base64-decode, identify, check and hash one image. InvalidArgument with the
// reason (bad base64, not an image, truncated, too many pixels).
absl::StatusOr<ImagePtr> DecodeImage(absl::string_view base64, const ImageCheckOptions& options);

struct DraftInstance {
  std::string instruction;
  std::string inputs;
  std::string outputs;
  std::string meta_json;
  std::vector<ImagePtr> images;
  std::vector<std::pair<std::string, std::string>> template_vars;
};

// Class-name tables of a task folder.
struct TaskAux {
  // imagenet mapping.txt: entry i is line i+1 (the class of label i+1).
  std::vector<std::string> mapping;
  // ss labels.json: class name -> label, and label -> class name.
  std::map<std::string, std::string> class_to_label;
  std::map<std::string, std::string> label_to_class;
};

// Load mapping.txt / labels.json from `task_dir` when present. Missing files
// give an empty table; malformed ones an InvalidArgument naming the file.
absl::StatusOr<TaskAux> LoadTaskAux(const std::string& task_dir);

// The English rows of an M3IT-80 task split: images per line (and per id).
struct EnglishRows {
  std::string rel_path;
  struct Row {
    std::vector<ImagePtr> images;
    std::string error;  // why this row has no usable images
  };
  std::map<uint64_t, Row> by_line;
  std::map<std::string, uint64_t> line_of_id;
  std::string file_error;  // the whole file could not be read
};

enum class Mapping {
  kGeneric,
  kCoco,
  kVqaV2,
  kOkvqa,
  kAokvqa,
  kViquae,
  kVist,
  kSnliVe,
  kImagenet,
  kSs,
  kRephrased,
  kTranslated,  // M3IT-80
};

// What a mapping asks of every row, from the one table the mapper runs on (and
// docs/data-layouts.md lists): each required field, present under one of its
// keys, and the values a key may take.
struct MappingSpec {
  struct Required {
    const char* what;  // "question", "hypothesis", ...
    std::vector<absl::string_view> keys;
  };
  struct Vocabulary {
    std::vector<absl::string_view> keys;
    std::vector<absl::string_view> values;  // lower case; compared case-insensitively
  };
  Mapping mapping;
  const char* name;
  std::vector<Required> required;
  std::vector<Vocabulary> vocabularies;
};
std::vector<MappingSpec> MappingSpecs();

// The mapping for a task of the M3IT layout (by config name and variant).
Mapping MappingForTask(const std::string& task, const std::string& variant);

struct RowContext {
  Mapping mapping = Mapping::kGeneric;
  const TaskAux* aux = nullptr;
  const EnglishRows* english = nullptr;  // kTranslated only
  uint64_t line = 0;
  ImageCheckOptions images;
};

// Map one row. On success appends one or more instances to `out`. On failure
// returns InvalidArgument whose message is the reject reason, naming the key
// (e.g. "missing image: none of image_base64_str, images, ... is present",
// "field 'question': expected a string, got number").
absl::Status MapRow(simdjson::dom::element row, const RowContext& ctx,
                    std::vector<DraftInstance>* out);

// The reject reason for a line simdjson cannot parse.
std::string JsonErrorReason(simdjson::error_code err);

// The keys that may hold a row's images, in probing order ("a.b" is key b of
// object a).
absl::Span<const absl::string_view> ImageKeys();

// Extract and decode the images of a row by probing the known image keys.
absl::Status ExtractImages(simdjson::dom::object row, const ImageCheckOptions& options,
                           std::vector<ImagePtr>* out);

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_ROW_MAPPER_H_
