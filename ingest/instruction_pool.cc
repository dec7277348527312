#include "ingest/instruction_pool.h"

#include <simdjson.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "ingest/source_file.h"

namespace m3serve::ingest {
namespace {

namespace dom = simdjson::dom;

absl::Status Defect(const std::string& path, uint64_t line, absl::string_view reason) {
  return absl::InvalidArgumentError(line == 0 ? absl::StrCat(path, ": ", reason)
                                              : absl::StrCat(path, ":", line, ": ", reason));
}

// Append the strings of `v` (a string or an array of strings) to `out`.
absl::Status TakeStrings(dom::element v, const std::string& path, uint64_t line,
                         absl::string_view what, std::vector<std::string>* out) {
  std::string_view one;
  if (!v.get_string().get(one)) {
    if (one.empty()) return Defect(path, line, absl::StrCat(what, " is an empty string"));
    out->emplace_back(one);
    return absl::OkStatus();
  }
  dom::array many;
  if (v.get_array().get(many)) {
    return Defect(path, line, absl::StrCat(what, ": expected a string or a list of strings"));
  }
  size_t i = 0;
  for (dom::element item : many) {
    if (item.get_string().get(one)) {
      return Defect(path, line, absl::StrCat(what, " entry ", i, " is not a string"));
    }
    if (one.empty()) return Defect(path, line, absl::StrCat(what, " entry ", i, " is an empty string"));
    out->emplace_back(one);
    ++i;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> LoadInstructionPool(const std::string& path,
                                                             const std::string& task) {
  absl::StatusOr<std::string> text = ReadRegularFile(path, kMaxPoolFileBytes);
  if (!text.ok()) return text.status();
  std::vector<std::string> out;
  dom::parser parser;
  if (!absl::EndsWith(path, ".jsonl")) {
    dom::element doc;
    if (auto err = parser.parse(*text).get(doc)) {
      return Defect(path, 0, absl::StrCat("not valid JSON (", simdjson::error_message(err), ")"));
    }
    dom::object obj;
    dom::element list = doc;
    if (!doc.get_object().get(obj) && obj["instructions"].get(list)) {
      return Defect(path, 0, "expected a JSON array of strings (or {\"instructions\": [...]})");
    }
    dom::array arr;
    if (list.get_array().get(arr)) {
      return Defect(path, 0, "expected a JSON array of strings (or {\"instructions\": [...]})");
    }
    absl::Status s = TakeStrings(list, path, 0, "instruction", &out);
    if (!s.ok()) return s;
    if (out.empty()) return Defect(path, 0, "holds no instructions (an empty list)");
    return out;
  }
  uint64_t number = 0;
  for (absl::string_view raw : absl::StrSplit(*text, '\n')) {
    ++number;
    absl::string_view line = absl::StripSuffix(raw, "\r");
    if (number == 1) line = absl::StripPrefix(line, "\xEF\xBB\xBF");
    if (line.find_first_not_of(" \t") == absl::string_view::npos) continue;
    dom::element e;
    if (auto err = parser.parse(line.data(), line.size()).get(e)) {
      return Defect(path, number, absl::StrCat("not valid JSON (", simdjson::error_message(err), ")"));
    }
    if (e.is_string()) {
      absl::Status s = TakeStrings(e, path, number, "instruction", &out);
      if (!s.ok()) return s;
      continue;
    }
    dom::object obj;
    if (e.get_object().get(obj)) {
      return Defect(path, number, "expected a string or an object with \"instruction\"");
    }
    std::string_view for_task;
    if ((!obj["task"].get_string().get(for_task) || !obj["dataset"].get_string().get(for_task)) &&
        for_task != task) {
      continue;  // another task's line
    }
    const size_t before = out.size();
    for (const char* key : {"instruction", "instructions"}) {
      dom::element v;
      if (obj[key].get(v)) continue;
      absl::Status s = TakeStrings(v, path, number, absl::StrCat("\"", key, "\""), &out);
      if (!s.ok()) return s;
    }
    dom::element v;
    if (!obj[std::string_view(task)].get(v)) {
      absl::Status s = TakeStrings(v, path, number, absl::StrCat("\"", task, "\""), &out);
      if (!s.ok()) return s;
    }
    if (out.size() == before) {
      return Defect(path, number,
                    absl::StrCat("no \"instruction\", \"instructions\" or \"", task, "\" field"));
    }
  }
  if (out.empty()) return Defect(path, 0, absl::StrCat("holds no instructions for task ", task));
  return out;
}

std::vector<std::string> PlaceholdersIn(const std::vector<std::string>& pool) {
  std::vector<std::string> out;
  for (const char* var : kTemplateVariables) {
    const std::string mark = absl::StrCat("[", var, "]");
    for (const auto& s : pool) {
      if (absl::StrContains(s, mark)) {
        out.emplace_back(var);
        break;
      }
    }
  }
  return out;
}

absl::Status CheckInstruction(const DraftInstance& d, const InstructionSource& source) {
  auto has_var = [&](absl::string_view var) {
    for (const auto& [name, value] : d.template_vars) {
      if (name == var) return true;
    }
    return false;
  };
  if (d.instruction.empty()) {
    if (!source.pool_usable) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing instruction: the row has none, and ", source.problem));
    }
    for (const auto& var : source.placeholders) {
      if (!has_var(var)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the task's instructions use [", var, "], and the row gives nothing to put there"));
      }
    }
    return absl::OkStatus();
  }
  for (const char* var : kTemplateVariables) {
    if (absl::StrContains(d.instruction, absl::StrCat("[", var, "]")) && !has_var(var)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the row's instruction uses [", var, "], and the row gives nothing to put there"));
    }
  }
  return absl::OkStatus();
}

}  // namespace m3serve::ingest
