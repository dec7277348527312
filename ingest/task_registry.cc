#include "ingest/task_registry.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <simdjson.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/license.h"
#include "common/status_macros.h"
#include "storage/key_codec.h"

#ifndef M3SERVE_DATA_DIR_SOURCE
#define M3SERVE_DATA_DIR_SOURCE ""
#endif
#ifndef M3SERVE_DATA_DIR_INSTALL
#define M3SERVE_DATA_DIR_INSTALL ""
#endif

namespace m3serve::ingest {
namespace {

constexpr char kFileName[] = "m3it_tasks.json";

absl::Status FieldError(const std::string& path, size_t index, const std::string& name,
                        absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": tasks[", index, "]", name.empty() ? "" : absl::StrCat(" (", name, ")"),
      ": field '", field, "' ", what));
}

// Merge the entries of one metadata file into `tasks`. With `is_override`,
// only the fields present replace those already known.
absl::Status MergeFile(const std::string& path, bool is_override,
                       std::map<std::string, TaskSpec>* tasks) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  auto err = parser.load(path).get(doc);
  if (err == simdjson::IO_ERROR) {
    return absl::NotFoundError(absl::StrCat("cannot read task metadata file ", path));
  }
  if (err) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not valid JSON (", simdjson::error_message(err), ")"));
  }
  simdjson::dom::array arr;
  if (doc["tasks"].get_array().get(arr)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected an object with a 'tasks' array"));
  }
  size_t index = 0;
  for (simdjson::dom::element e : arr) {
    simdjson::dom::object obj;
    if (e.get_object().get(obj)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tasks[", index, "] is not an object"));
    }
    std::string_view name_sv;
    if (obj["name"].get_string().get(name_sv)) return FieldError(path, index, "", "name", "must be a string");
    std::string name(name_sv);
    absl::Status valid = storage::ValidateName(name, "task name");
    if (!valid.ok()) return FieldError(path, index, name, "name", valid.message());
    auto [it, inserted] = tasks->try_emplace(name);
    TaskSpec& spec = it->second;
    if (inserted) {
      spec.info.name = name;
      spec.info.license = "LicenseRef-Unknown";
      spec.info.license_text = "Unknown";
    }
    for (auto field : obj) {
      absl::string_view key(field.key.data(), field.key.size());
      auto str = [&](std::string* out) -> absl::Status {
        std::string_view v;
        if (field.value.get_string().get(v)) return FieldError(path, index, name, key, "must be a string");
        *out = std::string(v);
        return absl::OkStatus();
      };
      if (key == "name" || key == "note" || key == "license_source" || key == "_comment") continue;
      if (key == "folder") {
        M3SERVE_RETURN_IF_ERROR(str(&spec.folder));
      } else if (key == "category") {
        M3SERVE_RETURN_IF_ERROR(str(&spec.info.category));
      } else if (key == "source_dataset") {
        M3SERVE_RETURN_IF_ERROR(str(&spec.info.source_dataset));
      } else if (key == "license") {
        // The wording is kept; the license is its SPDX id, and a spelling no
        // known license has is an error, not a new license.
        M3SERVE_RETURN_IF_ERROR(str(&spec.info.license_text));
        std::optional<std::string> id = CanonicalLicense(spec.info.license_text);
        if (!id) {
          return FieldError(path, index, name, key,
                            absl::StrCat("'", spec.info.license_text, "' is not a known license (known: ",
                                         absl::StrJoin(KnownLicenseIds(), ", "), ")"));
        }
        spec.info.license = *id;
      } else if (key == "variant") {
        M3SERVE_RETURN_IF_ERROR(str(&spec.variant));
      } else if (key == "default_lang") {
        M3SERVE_RETURN_IF_ERROR(str(&spec.info.default_lang));
      } else if (key == "commercial_use") {
        std::string v;
        M3SERVE_RETURN_IF_ERROR(str(&v));
        if (!storage::ParseCommercialUse(v, &spec.info.commercial_use)) {
          return FieldError(path, index, name, key, absl::StrCat("must be yes, no or unknown, got '", v, "'"));
        }
      } else if (key == "modality") {
        std::string v;
        M3SERVE_RETURN_IF_ERROR(str(&v));
        if (!storage::ParseModality(v, &spec.info.modality)) {
          return FieldError(path, index, name, key, absl::StrCat("must be image or video, got '", v, "'"));
        }
      } else if (key == "held_out") {
        bool b;
        if (field.value.get_bool().get(b)) return FieldError(path, index, name, key, "must be true or false");
        spec.info.held_out = b;
      } else {
        return FieldError(path, index, name, key, "is not a known field");
      }
    }
    if (!is_override && spec.info.category.empty() && !spec.folder.empty()) {
      spec.info.category = spec.folder.substr(0, spec.folder.find('/'));
    }
    ++index;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TaskRegistry> TaskRegistry::Load(const std::string& metadata_path,
                                                const std::string& overrides_path) {
  TaskRegistry r;
  if (metadata_path.empty()) {
    return absl::NotFoundError(
        "no task metadata file found; pass --task-metadata FILE (data/m3it_tasks.json in the "
        "source tree)");
  }
  M3SERVE_RETURN_IF_ERROR(MergeFile(metadata_path, false, &r.tasks_));
  if (!overrides_path.empty()) M3SERVE_RETURN_IF_ERROR(MergeFile(overrides_path, true, &r.tasks_));
  return r;
}

std::string TaskRegistry::DefaultMetadataPath() {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (const char* env = std::getenv("M3SERVE_TASK_METADATA"); env != nullptr && *env) return env;
  std::vector<fs::path> candidates;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / ".." / "share" / "m3serve" / kFileName);
  }
  if (*M3SERVE_DATA_DIR_INSTALL) candidates.push_back(fs::path(M3SERVE_DATA_DIR_INSTALL) / kFileName);
  if (*M3SERVE_DATA_DIR_SOURCE) candidates.push_back(fs::path(M3SERVE_DATA_DIR_SOURCE) / kFileName);
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c, ec)) return fs::weakly_canonical(c, ec).string();
  }
  return "";
}

const TaskSpec* TaskRegistry::Find(const std::string& name) const {
  auto it = tasks_.find(name);
  return it == tasks_.end() ? nullptr : &it->second;
}

const TaskSpec* TaskRegistry::BaseForFolder(const std::string& folder) const {
  return VariantForFolder(folder, "");
}

const TaskSpec* TaskRegistry::VariantForFolder(const std::string& folder,
                                               const std::string& variant) const {
  for (const auto& [name, spec] : tasks_) {
    if (spec.folder == folder && spec.variant == variant) return &spec;
  }
  return nullptr;
}

storage::TaskInfo TaskRegistry::InfoFor(const std::string& name, const std::string& category,
                                        const std::string& default_lang) const {
  if (const TaskSpec* spec = Find(name)) {
    storage::TaskInfo info = spec->info;
    if (info.category.empty()) info.category = category;
    return info;
  }
  storage::TaskInfo info;
  info.name = name;
  info.category = category;
  info.source_dataset = name;
  info.license = "LicenseRef-Unknown";
  info.license_text = "Unknown";
  info.default_lang = default_lang;
  return info;
}

}  // namespace m3serve::ingest
