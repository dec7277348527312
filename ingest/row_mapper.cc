#include "ingest/row_mapper.h"

#include <filesystem>
#include <vector>

#include <opencv2/imgcodecs.hpp>  // the IMREAD_ flags only: decoding is in the plugin

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"
#include "common/base64.h"
#include "common/hash.h"
#include "common/image_probe.h"
#include "common/json_writer.h"
#include "common/status_macros.h"
#include "ingest/image_codecs.h"
#include "ingest/source_file.h"

namespace m3serve::ingest {
namespace {

namespace dom = simdjson::dom;

// Debian's Abseil has its own string_view type; simdjson returns std::string_view.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Keys to probe, in order. The constants below are static arrays, so spans of
// them never dangle.
using Keys = absl::Span<const absl::string_view>;

constexpr absl::string_view kImageKeyList[] = {"image_base64_str", "images", "image", "img_str",
                                               "image_str", "video_str", "meta.image_base64_str"};
constexpr absl::string_view kRephrasedImageKeyList[] = {
    "meta.image_base64_str", "image_base64_str", "images", "image", "img_str", "image_str", "video_str"};
constexpr absl::string_view kInstructionKeyList[] = {"instruction", "meta.instruction"};
constexpr absl::string_view kRephrasedInstructionKeyList[] = {"meta.instruction", "instruction"};
constexpr absl::string_view kInputKeyList[] = {"inputs", "input", "question", "meta.inputs"};
constexpr absl::string_view kRephrasedInputKeyList[] = {"meta.inputs", "inputs", "input", "question"};
constexpr absl::string_view kOutputKeyList[] = {"outputs", "output", "answer", "caption", "meta.outputs"};
constexpr absl::string_view kRephrasedOutputKeyList[] = {"answer", "meta.answer", "outputs", "output",
                                                         "meta.outputs"};
constexpr Keys kImageKeys(kImageKeyList);
constexpr Keys kRephrasedImageKeys(kRephrasedImageKeyList);
constexpr Keys kInstructionKeys(kInstructionKeyList);
constexpr Keys kRephrasedInstructionKeys(kRephrasedInstructionKeyList);
constexpr Keys kInputKeys(kInputKeyList);
constexpr Keys kRephrasedInputKeys(kRephrasedInputKeyList);
constexpr Keys kOutputKeys(kOutputKeyList);
constexpr Keys kRephrasedOutputKeys(kRephrasedOutputKeyList);

std::vector<absl::string_view> V(Keys keys) { return {keys.begin(), keys.end()}; }

const char* TypeName(dom::element_type t) {
  switch (t) {
    case dom::element_type::ARRAY: return "array";
    case dom::element_type::OBJECT: return "object";
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
    case dom::element_type::DOUBLE: return "number";
    case dom::element_type::STRING: return "string";
    case dom::element_type::BOOL: return "boolean";
    case dom::element_type::NULL_VALUE: return "null";
  }
  return "value";
}

absl::Status TypeError(absl::string_view key, absl::string_view want, dom::element got) {
  return absl::InvalidArgumentError(
      absl::StrCat("field '", key, "': expected ", want, ", got ", TypeName(got.type())));
}

// Find `path` ("a" or "a.b") in `obj`. Absent and null both count as absent.
bool Lookup(dom::object obj, absl::string_view path, dom::element* out) {
  size_t dot = path.find('.');
  if (dot == absl::string_view::npos) {
    auto r = obj.at_key(std::string_view(path.data(), path.size()));
    if (r.error()) return false;
    *out = r.value_unsafe();
    return !out->is_null();
  }
  dom::object sub;
  auto head = path.substr(0, dot);
  if (obj.at_key(std::string_view(head.data(), head.size())).get_object().get(sub)) return false;
  return Lookup(sub, path.substr(dot + 1), out);
}

// The first of `keys` present: OK with *value set (and *key), OK with
// *found=false when none is present, or a type error naming the key.
absl::Status FirstString(dom::object obj, Keys keys, bool* found, absl::string_view* value,
                         absl::string_view* key = nullptr) {
  *found = false;
  for (absl::string_view k : keys) {
    dom::element e;
    if (!Lookup(obj, k, &e)) continue;
    std::string_view sv;
    if (e.get_string().get(sv)) return TypeError(k, "a string", e);
    *value = AV(sv);
    *found = true;
    if (key) *key = k;
    return absl::OkStatus();
  }
  return absl::OkStatus();
}

std::string MissingKeys(absl::string_view what, Keys keys) {
  return absl::StrCat("missing ", what, ": none of the keys ", absl::StrJoin(keys, ", "),
                      " is present");
}

absl::Status DecodeInto(absl::string_view key, absl::string_view b64, const ImageCheckOptions& o,
                        std::vector<ImagePtr>* out) {
  auto img = DecodeImage(b64, o);
  if (!img.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("field '", key, "': ", img.status().message()));
  }
  out->push_back(std::move(*img));
  return absl::OkStatus();
}

absl::Status ExtractImagesWithKeys(dom::object row, Keys keys, const ImageCheckOptions& o,
                                   std::vector<ImagePtr>* out) {
  for (absl::string_view k : keys) {
    dom::element e;
    if (!Lookup(row, k, &e)) continue;
    std::string_view s;
    if (!e.get_string().get(s)) return DecodeInto(k, AV(s), o, out);
    dom::array arr;
    if (e.get_array().get(arr)) return TypeError(k, "a base64 string or a list of them", e);
    size_t i = 0;
    for (dom::element item : arr) {
      std::string key = absl::StrCat(k, "[", i, "]");
      if (item.get_string().get(s)) return TypeError(key, "a base64 string", item);
      M3SERVE_RETURN_IF_ERROR(DecodeInto(key, AV(s), o, out));
      ++i;
    }
    if (i == 0) return absl::InvalidArgumentError(absl::StrCat("field '", k, "' is an empty list"));
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(MissingKeys("image", keys));
}

bool IsImageKey(std::string_view k) {
  for (absl::string_view ik : kImageKeys) {
    if (ik == AV(k)) return true;
  }
  return false;
}

// The row's `meta` as compact JSON without embedded image data ("" if absent).
std::string MetaJson(dom::object row) {
  dom::element meta;
  if (!Lookup(row, "meta", &meta)) return "";
  dom::object obj;
  if (meta.get_object().get(obj)) return simdjson::minify(meta);
  JsonWriter w;
  w.BeginObject();
  for (auto field : obj) {
    if (IsImageKey(field.key)) continue;
    w.Key(AV(field.key)).Raw(simdjson::minify(field.value));
  }
  w.EndObject();
  return w.Release();
}

struct Text {
  std::string instruction, inputs, outputs;
  bool has_outputs = false;
};

absl::Status GenericText(dom::object row, Keys instruction_keys, Keys input_keys,
                         Keys output_keys, Text* t) {
  bool found;
  absl::string_view v;
  M3SERVE_RETURN_IF_ERROR(FirstString(row, instruction_keys, &found, &v));
  if (found) t->instruction = std::string(v);
  M3SERVE_RETURN_IF_ERROR(FirstString(row, input_keys, &found, &v));
  if (found) t->inputs = std::string(v);
  M3SERVE_RETURN_IF_ERROR(FirstString(row, output_keys, &found, &v));
  if (found) {
    t->outputs = std::string(v);
    t->has_outputs = true;
  }
  return absl::OkStatus();
}

absl::Status RequireOutputs(const Text& t, Keys keys) {
  if (t.has_outputs) return absl::OkStatus();
  return absl::InvalidArgumentError(MissingKeys("output", keys));
}

bool ContainsLower(absl::string_view text, absl::string_view needle) {
  return absl::StrContains(absl::AsciiStrToLower(text), needle);
}

// A string or integer value of `key`, as text; found=false when absent.
absl::Status StringOrInteger(dom::object row, Keys keys, bool* found, std::string* out,
                             absl::string_view* which) {
  *found = false;
  for (absl::string_view k : keys) {
    dom::element e;
    if (!Lookup(row, k, &e)) continue;
    std::string_view s;
    int64_t i;
    if (!e.get_string().get(s)) {
      *out = std::string(s);
    } else if (!e.get_int64().get(i)) {
      *out = absl::StrCat(i);
    } else {
      return TypeError(k, "a string or an integer", e);
    }
    *found = true;
    *which = k;
    return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status MapTranslated(dom::object row, const RowContext& ctx, DraftInstance* d) {
  Text t;
  M3SERVE_RETURN_IF_ERROR(GenericText(row, {"instruction"}, {"inputs", "input"},
                                      {"outputs", "output", "answer"}, &t));
  M3SERVE_RETURN_IF_ERROR(RequireOutputs(t, {"outputs", "output", "answer"}));
  d->instruction = std::move(t.instruction);
  d->inputs = std::move(t.inputs);
  d->outputs = std::move(t.outputs);
  // A translated row that carries its own images needs no join.
  for (absl::string_view k : kImageKeys) {
    dom::element e;
    if (Lookup(row, k, &e)) return ExtractImagesWithKeys(row, kImageKeys, ctx.images, &d->images);
  }
  const EnglishRows* en = ctx.english;
  if (en == nullptr) return absl::InternalError("no English rows for a translated row");
  if (!en->file_error.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot take images from ", en->rel_path, ": ", en->file_error));
  }
  uint64_t line = ctx.line;
  bool found;
  std::string id;
  absl::string_view which;
  M3SERVE_RETURN_IF_ERROR(StringOrInteger(row, {"id"}, &found, &id, &which));
  if (found && !en->line_of_id.empty()) {
    auto it = en->line_of_id.find(id);
    if (it == en->line_of_id.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("no English row with id '", id, "' in ", en->rel_path));
    }
    line = it->second;
  }
  auto it = en->by_line.find(line);
  if (it == en->by_line.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no English row at line ", line, " of ", en->rel_path, " to take images from"));
  }
  if (!it->second.error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("English row ", en->rel_path, ":", line,
                                                   " has no usable image (", it->second.error, ")"));
  }
  d->images = it->second.images;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ImagePtr> DecodeImage(absl::string_view base64, const ImageCheckOptions& options) {
  auto blob = std::make_shared<ImageBlob>();
  M3SERVE_RETURN_IF_ERROR(Base64Decode(base64, &blob->bytes));
  M3SERVE_ASSIGN_OR_RETURN(ImageInfo info, ProbeImage(blob->bytes));
  const uint64_t pixels = uint64_t{info.width} * info.height;
  if (pixels > options.max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image header says ", info.width, "x", info.height, " = ", pixels,
        " pixels, above the limit of ", options.max_pixels, " (--max-image-pixels)"));
  }
  M3SERVE_RETURN_IF_ERROR(CheckImageComplete(info, blob->bytes));
  const bool needs_decode = info.width == 0 || options.full_decode;
  if (needs_decode && info.format != ImageFormat::kGif) {
    int flags = info.width == 0 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_REDUCED_GRAYSCALE_8;
    M3SERVE_ASSIGN_OR_RETURN(auto size, DecodeImageSize(blob->bytes, flags));
    if (!size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "not a decodable image: OpenCV cannot decode this ", ImageFormatName(info.format)));
    }
    if (info.width == 0) {
      info.width = static_cast<uint32_t>(size->first);
      info.height = static_cast<uint32_t>(size->second);
    }
  }
  blob->hash = ContentHash(blob->bytes);
  blob->meta = {info.format, info.width, info.height, blob->bytes.size()};
  return ImagePtr(std::move(blob));
}

std::string JsonErrorReason(simdjson::error_code err) {
  switch (err) {
    case simdjson::UTF8_ERROR: return "invalid UTF-8 in the line";
    case simdjson::DEPTH_ERROR: return "invalid JSON: nested deeper than 1024 levels";
    case simdjson::EMPTY: return "invalid JSON: no value";
    default:
      return absl::StrCat("invalid JSON (truncated or malformed): ", simdjson::error_message(err));
  }
}

absl::Span<const absl::string_view> ImageKeys() { return kImageKeys; }

absl::Status ExtractImages(dom::object row, const ImageCheckOptions& options,
                           std::vector<ImagePtr>* out) {
  return ExtractImagesWithKeys(row, kImageKeys, options, out);
}

absl::StatusOr<TaskAux> LoadTaskAux(const std::string& task_dir) {
  TaskAux aux;
  constexpr uint64_t kMaxSideFileBytes = 64ull << 20;
  std::error_code ec;
  const std::string mapping = task_dir + "/mapping.txt";
  if (std::filesystem::exists(mapping, ec)) {
    absl::StatusOr<std::string> text = ReadRegularFile(mapping, kMaxSideFileBytes);
    if (!text.ok()) return text.status();
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      aux.mapping.emplace_back(absl::StripSuffix(line, "\r"));
    }
    if (!aux.mapping.empty() && aux.mapping.back().empty()) aux.mapping.pop_back();  // final newline
  }
  const std::string labels = task_dir + "/labels.json";
  if (std::filesystem::exists(labels, ec)) {
    absl::StatusOr<std::string> text = ReadRegularFile(labels, kMaxSideFileBytes);
    if (!text.ok()) return text.status();
    simdjson::dom::parser parser;
    dom::element doc;
    if (auto err = parser.parse(*text).get(doc)) {
      return absl::InvalidArgumentError(
          absl::StrCat(labels, ": not valid JSON (", simdjson::error_message(err), ")"));
    }
    dom::object obj;
    if (doc.get_object().get(obj)) {
      return absl::InvalidArgumentError(absl::StrCat(labels, ": expected an object class -> label"));
    }
    for (auto field : obj) {
      std::string label;
      std::string_view s;
      int64_t i;
      if (!field.value.get_string().get(s)) label = std::string(s);
      else if (!field.value.get_int64().get(i)) label = absl::StrCat(i);
      else return absl::InvalidArgumentError(absl::StrCat(labels, ": label of '", AV(field.key), "' is not a string or integer"));
      aux.class_to_label[std::string(field.key)] = label;
      aux.label_to_class[label] = std::string(field.key);
    }
  }
  return aux;
}

Mapping MappingForTask(const std::string& task, const std::string& variant) {
  if (variant == "rephrased") return Mapping::kRephrased;
  if (task == "coco") return Mapping::kCoco;
  if (task == "vqa-v2") return Mapping::kVqaV2;
  if (task == "okvqa") return Mapping::kOkvqa;
  if (task == "a-okvqa") return Mapping::kAokvqa;
  if (task == "viquae") return Mapping::kViquae;
  if (task == "vist") return Mapping::kVist;
  if (task == "snli-ve") return Mapping::kSnliVe;
  if (task == "imagenet" || task == "imagenet-open-ended") return Mapping::kImagenet;
  if (task == "ss") return Mapping::kSs;
  return Mapping::kGeneric;
}

namespace {

// The class name of an imagenet row: outputs given directly, a class name
// field, or a label index into mapping.txt.
absl::Status ImagenetClass(dom::object row, const TaskAux* aux, Text* t) {
  if (t->has_outputs) return absl::OkStatus();
  bool found;
  absl::string_view v;
  M3SERVE_RETURN_IF_ERROR(FirstString(row, {"label_name", "class_name"}, &found, &v));
  if (found) {
    t->outputs = std::string(v);
    t->has_outputs = true;
    return absl::OkStatus();
  }
  std::string label;
  absl::string_view which;
  M3SERVE_RETURN_IF_ERROR(
      StringOrInteger(row, {"label", "label_idx", "class_id", "target"}, &found, &label, &which));
  if (!found) {
    return absl::InvalidArgumentError(
        "missing output: none of the keys outputs, output, answer, caption, label_name, "
        "class_name, label, label_idx, class_id, target is present");
  }
  int64_t index;
  if (!absl::SimpleAtoi(label, &index)) {  // a class name given as the label
    t->outputs = label;
    t->has_outputs = true;
    return absl::OkStatus();
  }
  if (aux == nullptr || aux->mapping.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "field '", which, "' is a class index (", index, ") but the task folder has no mapping.txt"));
  }
  // Lines may be "<index> <name>", "<wnid> <name>" or just "<name>"; plain lines
  // are numbered from 1 (the loader's label2class is 1-indexed).
  for (size_t i = 0; i < aux->mapping.size(); ++i) {
    absl::string_view line = absl::StripAsciiWhitespace(aux->mapping[i]);
    size_t sp = line.find_first_of(" \t");
    absl::string_view first = line.substr(0, sp);
    int64_t n;
    bool numbered = sp != absl::string_view::npos && absl::SimpleAtoi(first, &n);
    int64_t key = numbered ? n : static_cast<int64_t>(i + 1);
    if (key != index) continue;
    absl::string_view name = line;
    if (numbered || (sp != absl::string_view::npos && first.size() == 9 && first[0] == 'n')) {
      name = absl::StripAsciiWhitespace(line.substr(sp));
    }
    t->outputs = std::string(name);
    t->has_outputs = true;
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("field '", which, "': class index ", index,
                                                 " is not in mapping.txt (", aux->mapping.size(),
                                                 " lines)"));
}

// Something-Something rows become a lettered multiple choice, as in the M3IT
// loader: the true class among distractors drawn from labels.json, at a
// position chosen by the row (deterministic: a pure function of the line),
// outputs "(X) classname". Without a labels.json the class name is the output.
void SsOptions(const std::string& true_class, const RowContext& ctx, Text* t) {
  constexpr size_t kOptions = 4;
  if (ctx.aux == nullptr || ctx.aux->class_to_label.size() < kOptions) {
    t->outputs = true_class;
    t->has_outputs = true;
    return;
  }
  std::vector<const std::string*> classes;
  for (const auto& [name, label] : ctx.aux->class_to_label) {
    if (name != true_class) classes.push_back(&name);
  }
  uint64_t h = Hash64(absl::StrCat(ctx.line, "|", true_class), 0x55);
  std::vector<std::string> options;
  for (size_t i = 0; options.size() + 1 < kOptions && !classes.empty(); ++i) {
    size_t pick = (h + i * 0x9E3779B97F4A7C15ull) % classes.size();
    options.push_back(*classes[pick]);
    classes.erase(classes.begin() + static_cast<std::ptrdiff_t>(pick));
  }
  size_t pos = h % (options.size() + 1);
  options.insert(options.begin() + static_cast<std::ptrdiff_t>(pos), true_class);
  std::string inputs;
  for (size_t i = 0; i < options.size(); ++i) {
    absl::StrAppend(&inputs, i ? "\n" : "", "(", std::string(1, char('A' + i)), ") ", options[i]);
  }
  if (t->inputs.empty()) t->inputs = inputs;
  else t->inputs = absl::StrCat(t->inputs, "\n", inputs);
  t->outputs = absl::StrCat("(", std::string(1, char('A' + pos)), ") ", true_class);
  t->has_outputs = true;
}

}  // namespace

namespace {

// ---------------------------------------------------------------------------
// One function per mapping. Each gets the row (images and required keys
// already checked), the generic instruction / inputs / outputs and the base
// instance, and appends the instances.

using MapFn = absl::Status (*)(dom::object row, const RowContext& ctx, Text t, DraftInstance base,
                               std::vector<DraftInstance>* out);

absl::Status Finish(Text t, DraftInstance base, Keys output_keys, std::vector<DraftInstance>* out) {
  M3SERVE_RETURN_IF_ERROR(RequireOutputs(t, output_keys));
  base.instruction = std::move(t.instruction);
  base.inputs = std::move(t.inputs);
  base.outputs = std::move(t.outputs);
  out->push_back(std::move(base));
  return absl::OkStatus();
}

absl::Status MapGeneric(dom::object, const RowContext&, Text t, DraftInstance base,
                        std::vector<DraftInstance>* out) {
  return Finish(std::move(t), std::move(base), kOutputKeys, out);
}

absl::Status MapCoco(dom::object row, const RowContext&, Text t, DraftInstance base,
                     std::vector<DraftInstance>* out) {
  dom::element targets;
  if (!Lookup(row, "meta.targets", &targets)) return Finish(std::move(t), std::move(base), kOutputKeys, out);
  dom::array arr;
  if (targets.get_array().get(arr)) return TypeError("meta.targets", "a list of captions", targets);
  size_t i = 0;
  for (dom::element cap : arr) {
    std::string_view s;
    if (cap.get_string().get(s)) return TypeError(absl::StrCat("meta.targets[", i, "]"), "a string", cap);
    if (s.empty()) return absl::InvalidArgumentError(absl::StrCat("field 'meta.targets[", i, "]' is empty"));
    DraftInstance d = base;
    d.instruction = t.instruction;
    d.inputs = t.inputs;
    d.outputs = std::string(s);
    out->push_back(std::move(d));
    ++i;
  }
  if (i == 0) return absl::InvalidArgumentError("field 'meta.targets' is an empty list");
  return absl::OkStatus();
}

absl::Status MapVqaV2(dom::object row, const RowContext&, Text t, DraftInstance base,
                      std::vector<DraftInstance>* out) {
  absl::string_view para, orig;
  bool has_para, has_orig;
  M3SERVE_RETURN_IF_ERROR(FirstString(row, {"paraphrased_answer"}, &has_para, &para));
  M3SERVE_RETURN_IF_ERROR(FirstString(row, {"original_answer"}, &has_orig, &orig));
  const bool unusable = has_para && (ContainsLower(para, "not answerable") || ContainsLower(para, "sorry") ||
                                     ContainsLower(para, "image descriptions"));
  if (has_para && !unusable) {
    t.outputs = std::string(para);
    t.has_outputs = true;
  } else if (has_orig) {
    t.outputs = absl::StrCat("The answer is ", orig, ".");
    t.has_outputs = true;
  } else if (has_para) {
    t.outputs = std::string(para);
    t.has_outputs = true;
  }
  return Finish(std::move(t), std::move(base), kOutputKeys, out);
}

absl::Status MapOkvqa(dom::object row, const RowContext&, Text t, DraftInstance base,
                      std::vector<DraftInstance>* out) {
  absl::string_view para, answer;
  bool has_para, has_answer;
  M3SERVE_RETURN_IF_ERROR(FirstString(row, {"paraphrased_answer"}, &has_para, &para));
  M3SERVE_RETURN_IF_ERROR(FirstString(row, {"answer"}, &has_answer, &answer));
  if (has_para && !(ContainsLower(para, "sorry") && has_answer)) {
    t.outputs = std::string(para);
    t.has_outputs = true;
  } else if (has_answer) {
    t.outputs = absl::StrCat("The answer is ", answer, ".");
    t.has_outputs = true;
  }
  return Finish(std::move(t), std::move(base), kOutputKeys, out);
}

absl::Status MapAokvqa(dom::object row, const RowContext&, Text t, DraftInstance base,
                       std::vector<DraftInstance>* out) {
  absl::string_view rationale, answer;
  bool has_r, has_a;
  M3SERVE_RETURN_IF_ERROR(FirstString(row, {"rationale"}, &has_r, &rationale));
  M3SERVE_RETURN_IF_ERROR(FirstString(row, {"answer"}, &has_a, &answer));
  if (has_r && has_a) {
    t.outputs = absl::StrCat(rationale, " So the answer is ", answer, ".");
    t.has_outputs = true;
  }
  return Finish(std::move(t), std::move(base), kOutputKeys, out);
}

absl::Status MapViquae(dom::object row, const RowContext&, Text t, DraftInstance base,
                       std::vector<DraftInstance>* out) {
  bool found;
  absl::string_view v;
  M3SERVE_RETURN_IF_ERROR(FirstString(row, {"paraphrased_answer"}, &found, &v));
  if (found) {
    t.outputs = std::string(v);
    t.has_outputs = true;
  }
  return Finish(std::move(t), std::move(base), kOutputKeys, out);
}

absl::Status MapVist(dom::object row, const RowContext&, Text t, DraftInstance base,
                     std::vector<DraftInstance>* out) {
  dom::element sentences;
  if (Lookup(row, "sentences", &sentences)) {
    dom::array arr;
    if (sentences.get_array().get(arr)) return TypeError("sentences", "a list of strings", sentences);
    std::vector<absl::string_view> parts;
    for (dom::element s : arr) {
      std::string_view sv;
      if (s.get_string().get(sv)) return TypeError(absl::StrCat("sentences[", parts.size(), "]"), "a string", s);
      parts.push_back(AV(sv));
    }
    if (parts.empty()) return absl::InvalidArgumentError("field 'sentences' is an empty list");
    t.outputs = absl::StrJoin(parts, " ");
    t.has_outputs = true;
  }
  return Finish(std::move(t), std::move(base), kOutputKeys, out);
}

absl::Status MapSnliVe(dom::object row, const RowContext&, Text t, DraftInstance base,
                       std::vector<DraftInstance>* out) {
  bool found;
  absl::string_view v;
  M3SERVE_RETURN_IF_ERROR(FirstString(row, {"hypothesis"}, &found, &v));
  if (v.empty()) return absl::InvalidArgumentError("field 'hypothesis' is empty");
  base.template_vars.emplace_back("HYPO", std::string(v));
  if (!t.instruction.empty()) t.instruction = absl::StrReplaceAll(t.instruction, {{"[HYPO]", v}});
  absl::string_view label;
  bool has_label;
  M3SERVE_RETURN_IF_ERROR(FirstString(row, {"label", "gold_label"}, &has_label, &label));
  if (has_label) {  // the vocabulary was checked: contradiction / entailment / neutral
    const std::string l = absl::AsciiStrToLower(label);
    std::string mapped = l == "contradiction" ? "no" : l == "entailment" ? "yes" : "maybe";
    absl::string_view rationale;
    bool has_rationale;
    M3SERVE_RETURN_IF_ERROR(FirstString(row, {"rationale", "explanation"}, &has_rationale, &rationale));
    if (mapped == "maybe" && has_rationale) mapped = absl::StrCat(mapped, ". ", rationale);
    t.outputs = std::move(mapped);
    t.has_outputs = true;
  }
  return Finish(std::move(t), std::move(base), kOutputKeys, out);
}

absl::Status MapImagenet(dom::object row, const RowContext& ctx, Text t, DraftInstance base,
                         std::vector<DraftInstance>* out) {
  M3SERVE_RETURN_IF_ERROR(ImagenetClass(row, ctx.aux, &t));
  return Finish(std::move(t), std::move(base), kOutputKeys, out);
}

absl::Status MapSs(dom::object row, const RowContext& ctx, Text t, DraftInstance base,
                   std::vector<DraftInstance>* out) {
  if (!t.has_outputs) {
    bool found;
    std::string label;
    absl::string_view which;
    M3SERVE_RETURN_IF_ERROR(StringOrInteger(row, {"label", "class", "template"}, &found, &label, &which));
    if (found && ctx.aux != nullptr && !ctx.aux->class_to_label.empty()) {
      // labels.json is the vocabulary: a class name, or a label it maps to one.
      if (auto it = ctx.aux->label_to_class.find(label); it != ctx.aux->label_to_class.end()) {
        label = it->second;
      } else if (!ctx.aux->class_to_label.count(label)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "field '", which, "': '", label, "' is neither a class nor a label of labels.json"));
      }
    }
    if (found) SsOptions(label, ctx, &t);
  }
  return Finish(std::move(t), std::move(base), kOutputKeys, out);
}

absl::Status MapRephrased(dom::object, const RowContext&, Text t, DraftInstance base,
                          std::vector<DraftInstance>* out) {
  return Finish(std::move(t), std::move(base), kRephrasedOutputKeys, out);
}

absl::Status MapTranslatedRow(dom::object row, const RowContext& ctx, Text, DraftInstance,
                              std::vector<DraftInstance>* out) {
  DraftInstance d;
  M3SERVE_RETURN_IF_ERROR(MapTranslated(row, ctx, &d));
  d.meta_json = MetaJson(row);
  out->push_back(std::move(d));
  return absl::OkStatus();
}

// The table: per mapping, its name, its required keys and vocabularies, the
// keys of its image, instruction, inputs and outputs, and its function.
struct MappingEntry {
  MappingSpec spec;
  Keys image_keys, instruction_keys, input_keys, output_keys;
  MapFn map;
};

const std::vector<MappingEntry>& Table() {
  const std::vector<absl::string_view> question = {"question", "inputs", "input"};
  static const auto* table = new std::vector<MappingEntry>{
      {{Mapping::kGeneric, "generic", {{"output", V(kOutputKeys)}}, {}},
       kImageKeys, kInstructionKeys, kInputKeys, kOutputKeys, MapGeneric},
      {{Mapping::kCoco, "coco", {{"caption", {"meta.targets", "outputs", "output", "answer", "caption"}}}, {}},
       kImageKeys, kInstructionKeys, kInputKeys, kOutputKeys, MapCoco},
      {{Mapping::kVqaV2, "vqa-v2",
        {{"question", question},
         {"answer", {"paraphrased_answer", "original_answer", "outputs", "output", "answer"}}}, {}},
       kImageKeys, kInstructionKeys, kInputKeys, kOutputKeys, MapVqaV2},
      {{Mapping::kOkvqa, "okvqa",
        {{"question", question}, {"answer", {"paraphrased_answer", "answer", "outputs", "output"}}}, {}},
       kImageKeys, kInstructionKeys, kInputKeys, kOutputKeys, MapOkvqa},
      {{Mapping::kAokvqa, "a-okvqa", {{"question", question}, {"answer", {"answer", "outputs", "output"}}}, {}},
       kImageKeys, kInstructionKeys, kInputKeys, kOutputKeys, MapAokvqa},
      {{Mapping::kViquae, "viquae",
        {{"question", question}, {"answer", {"paraphrased_answer", "answer", "outputs", "output"}}}, {}},
       kImageKeys, kInstructionKeys, kInputKeys, kOutputKeys, MapViquae},
      {{Mapping::kVist, "vist", {{"story", {"sentences", "outputs", "output"}}}, {}},
       kImageKeys, kInstructionKeys, kInputKeys, kOutputKeys, MapVist},
      {{Mapping::kSnliVe, "snli-ve",
        {{"hypothesis", {"hypothesis"}}, {"label", {"label", "gold_label", "outputs", "output"}}},
        {{{"label", "gold_label"}, {"contradiction", "entailment", "neutral"}}}},
       kImageKeys, kInstructionKeys, kInputKeys, kOutputKeys, MapSnliVe},
      {{Mapping::kImagenet, "imagenet",
        {{"class", {"outputs", "output", "answer", "caption", "label_name", "class_name", "label", "label_idx",
                    "class_id", "target"}}}, {}},
       kImageKeys, kInstructionKeys, kInputKeys, kOutputKeys, MapImagenet},
      {{Mapping::kSs, "ss", {{"class", {"outputs", "output", "answer", "label", "class", "template"}}}, {}},
       kImageKeys, kInstructionKeys, kInputKeys, kOutputKeys, MapSs},
      {{Mapping::kRephrased, "rephrased", {{"answer", V(kRephrasedOutputKeys)}}, {}},
       kRephrasedImageKeys, kRephrasedInstructionKeys, kRephrasedInputKeys, kRephrasedOutputKeys, MapRephrased},
      {{Mapping::kTranslated, "m3it-80", {{"output", {"outputs", "output", "answer"}}}, {}},
       {}, {}, {}, {}, MapTranslatedRow},
  };
  return *table;
}

const MappingEntry& EntryFor(Mapping m) {
  for (const auto& e : Table()) {
    if (e.spec.mapping == m) return e;
  }
  return Table().front();
}

absl::Status CheckSpec(dom::object row, const MappingSpec& spec) {
  for (const auto& req : spec.required) {
    bool present = false;
    for (absl::string_view k : req.keys) {
      dom::element e;
      if (Lookup(row, k, &e)) {
        present = true;
        break;
      }
    }
    if (!present) {
      return absl::InvalidArgumentError(absl::StrCat("missing ", req.what, ": none of the keys ",
                                                     absl::StrJoin(req.keys, ", "), " is present (",
                                                     spec.name, " rows need it)"));
    }
  }
  for (const auto& vocab : spec.vocabularies) {
    bool found;
    absl::string_view value, key;
    M3SERVE_RETURN_IF_ERROR(FirstString(row, vocab.keys, &found, &value, &key));
    if (!found) continue;
    const std::string lower = absl::AsciiStrToLower(value);
    bool known = false;
    for (absl::string_view v : vocab.values) known = known || v == lower;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat("field '", key, "': '", value, "' is not one of ",
                                                     absl::StrJoin(vocab.values, ", "), " (", spec.name,
                                                     " labels)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<MappingSpec> MappingSpecs() {
  std::vector<MappingSpec> out;
  for (const auto& e : Table()) out.push_back(e.spec);
  return out;
}

absl::Status MapRow(dom::element row_el, const RowContext& ctx, std::vector<DraftInstance>* out) {
  dom::object row;
  if (row_el.get_object().get(row)) {
    return absl::InvalidArgumentError(
        absl::StrCat("line is a JSON ", TypeName(row_el.type()), ", not an object"));
  }
  const MappingEntry& entry = EntryFor(ctx.mapping);
  DraftInstance base;
  Text t;
  if (ctx.mapping != Mapping::kTranslated) {
    M3SERVE_RETURN_IF_ERROR(ExtractImagesWithKeys(row, entry.image_keys, ctx.images, &base.images));
  }
  M3SERVE_RETURN_IF_ERROR(CheckSpec(row, entry.spec));
  if (ctx.mapping != Mapping::kTranslated) {
    M3SERVE_RETURN_IF_ERROR(
        GenericText(row, entry.instruction_keys, entry.input_keys, entry.output_keys, &t));
    base.meta_json = MetaJson(row);
  }
  return entry.map(row, ctx, std::move(t), std::move(base), out);
}

}  // namespace m3serve::ingest
