// File: ingest/job_inputs.h
//
// What the rows of a source file depend on besides the file itself: the row
// mapping they go through, and the side files that mapping reads (instruction
// pools, imagenet's mapping.txt / ss's labels.json, M3IT-80's English rows).
// Side files are part of a source file's identity: when one changes between
// runs, the file's group is ingested again, as when the file itself changes.
#ifndef M3SERVE_INGEST_JOB_INPUTS_H_
#define M3SERVE_INGEST_JOB_INPUTS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ingest/layout.h"
#include "ingest/row_mapper.h"
#include "ingest/source_file.h"
#include "storage/types.h"

namespace m3serve::ingest {

// The row mapping of a source file (the one place that decides it).
Mapping MappingOf(const FileJob& job);

struct SideFile {
  enum class Kind { kPool, kClassTable, kEnglishRows };
  Kind kind = Kind::kPool;
  std::string role;  // SideFileState::role
  std::string path;
};

// The side files the rows of `job` are made with, in a fixed order. Class
// tables are listed (present or not) only for the mappings that read them.
std::vector<SideFile> SideFilesOf(const FileJob& job);

// The identities of side files as they are now, for one run: each file is
// read at most once per run (pools once per task), and not at all when its
// stat matches the recorded state (the quick check of source files).
class SideFileIdentities {
 public:
  // `verify`: read every side file, whatever its stat (--verify-sources).
  // `now_ns`: wall-clock time recorded with each stat.
  SideFileIdentities(bool verify, int64_t now_ns) : verify_(verify), now_ns_(now_ns) {}

  // One state per SideFilesOf(job) entry. `recorded`: the states stored with
  // the file's progress (empty when none).
  std::vector<storage::SideFileState> Current(const FileJob& job,
                                              const std::vector<storage::SideFileState>& recorded);

  // The instructions this run loaded from pool `path` for `task`; nullptr when
  // it did not load them (its stat was trusted) or they are unusable.
  const std::vector<std::string>* LoadedPool(const std::string& path, const std::string& task) const;

 private:
  // `stat`: the file's stat when the caller has just taken it.
  storage::SideFileState Identify(const SideFile& f, const std::string& task,
                                  const absl::StatusOr<SourceStat>* stat = nullptr);

  bool verify_;
  int64_t now_ns_;
  std::map<std::string, storage::SideFileState> identified_;       // by kind, path (and task)
  std::map<std::string, std::vector<std::string>> pools_;          // by path and task
};

// How the side files of `job` changed from `recorded` to `now`, as a note
// naming the file (e.g. "its instruction pool data/vqa/gqa/instruction.json
// changed"); empty when every identity is the same (stats may differ).
std::string SideFilesChange(const FileJob& job, const std::vector<storage::SideFileState>& recorded,
                            const std::vector<storage::SideFileState>& now);

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_JOB_INPUTS_H_
