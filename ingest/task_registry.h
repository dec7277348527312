// File: ingest/task_registry.h
//
// Task metadata (category, source dataset, license, commercial use, held-out,
// modality, default language, repository folder) read from the data file
// data/m3it_tasks.json, optionally overridden by an operator's file of the
// same shape. No license string lives in code: a task missing from the file
// still ingests, with license "Unknown".
#ifndef M3SERVE_INGEST_TASK_REGISTRY_H_
#define M3SERVE_INGEST_TASK_REGISTRY_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/types.h"

namespace m3serve::ingest {

struct TaskSpec {
  storage::TaskInfo info;
  std::string folder;   // "vqa/vqav2" (category/folder in the M3IT repository)
  std::string variant;  // "" | "rephrased" | "open-ended"
};

class TaskRegistry {
 public:
  // Load `metadata_path` and apply `overrides_path` (may be empty). Errors name
  // the file, the entry and the field: InvalidArgument for bad content,
  // NotFound when a file is missing.
  static absl::StatusOr<TaskRegistry> Load(const std::string& metadata_path,
                                           const std::string& overrides_path);

  // The file shipped with m3serve: $M3SERVE_TASK_METADATA, else
  // <exe dir>/../share/m3serve/m3it_tasks.json (installed), else the source
  // tree's data/ (development builds). Empty when none exists.
  static std::string DefaultMetadataPath();

  // nullptr when `name` is not in the registry.
  const TaskSpec* Find(const std::string& name) const;

  // The base task (no variant) stored in `folder` ("vqa/vqav2"); nullptr if none.
  const TaskSpec* BaseForFolder(const std::string& folder) const;
  // The task of `folder` with `variant`; nullptr if none.
  const TaskSpec* VariantForFolder(const std::string& folder, const std::string& variant) const;

  // Metadata for `name`; for an unknown task, defaults with license "Unknown",
  // commercial use unknown, the given category and language.
  storage::TaskInfo InfoFor(const std::string& name, const std::string& category,
                            const std::string& default_lang) const;

  size_t size() const { return tasks_.size(); }

 private:
  std::map<std::string, TaskSpec> tasks_;
};

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_TASK_REGISTRY_H_
