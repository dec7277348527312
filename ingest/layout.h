// File: ingest/layout.h
//
// Find the row files of a SOURCE and decide, for each, its task, split and
// language: an M3IT repository root (data/<category>/<folder>/<split files>),
// an M3IT-80 root (data/<task>/<task>_<split>_<lang>.jsonl with English
// data/<task>/{train,val,test}_500.jsonl and data/instructions/<lang>.jsonl),
// or one canonical JSONL file with an explicit task, split and language.
// The rules follow shared/docs/m3it-format.md; see docs/data-layouts.md.
#ifndef M3SERVE_INGEST_LAYOUT_H_
#define M3SERVE_INGEST_LAYOUT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ingest/task_registry.h"
#include "storage/types.h"

namespace m3serve::ingest {

enum class RowFormat {
  kM3it,              // raw M3IT rows, mapped per task
  kM3it80Translated,  // M3IT-80 text rows joined with English rows for images
  kCanonical,         // instruction / inputs / image_base64_str / outputs
};

// One instruction pool file and the language it is for.
struct PoolFile {
  std::string path;
  std::string lang;
};

struct FileJob {
  std::string path;      // filesystem path
  std::string rel_path;  // relative to the source root, used in SourceRef and progress
  storage::GroupKey group;
  storage::TaskInfo task;
  std::string variant;   // "" | "rephrased" | ...
  RowFormat format = RowFormat::kM3it;
  std::string raw_path;      // M3IT-80: English rows with the images
  std::string raw_rel_path;
  std::string task_dir;      // folder holding mapping.txt / labels.json
  std::vector<PoolFile> pools;

  // Identity of this file in the progress column family.
  std::string ProgressKey() const { return group.ToString() + "|" + rel_path; }
};

struct Discovery {
  std::vector<FileJob> jobs;
  // Files passed over on purpose, missing instruction files, etc.
  std::vector<std::string> warnings;
};

struct DiscoverOptions {
  // For a canonical JSONL SOURCE: the group it belongs to.
  std::string task, split, lang;
  // Restrict to these task names (empty: all).
  std::vector<std::string> tasks;
};

// What a split file name says.
struct SplitFileName {
  std::string split;   // train | validation | test
  int priority = 0;    // plain 0, train.large 1, para_ 1, _v2 2: highest wins
  bool rephrased = false;  // dated <split>_YYYY-MM-DD
  bool english_500 = false;  // M3IT-80 {train,val,test}_500
};

// Parse a file stem (name without .jsonl). nullopt when it names no split.
std::optional<SplitFileName> ParseSplitFileName(absl::string_view stem);

// "val" / "dev" / "validation" -> "validation"; train/test unchanged; else "".
std::string NormalizeSplit(absl::string_view s);

// Discover every job of every SOURCE, in a deterministic order. Errors:
// NotFound (a SOURCE does not exist), InvalidArgument (a SOURCE is neither
// layout, or a canonical file without task/split/lang).
absl::StatusOr<Discovery> DiscoverSources(const std::vector<std::string>& sources,
                                          const TaskRegistry& registry,
                                          const DiscoverOptions& options);

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_LAYOUT_H_
