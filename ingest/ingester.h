// File: ingest/ingester.h
//
// The ingest pipeline: one reader thread streams each source file in chunks
// of lines, worker threads (one per core) parse JSON, map rows and decode,
// check and hash images, and the calling thread commits results in file and
// line order: dense ordinals per group, each image stored once, progress
// written in the same atomic batch as the rows it covers. So an ingest killed
// at any point and run again ends with exactly the store an uninterrupted run
// makes, and ingesting a source again adds nothing.
#ifndef M3SERVE_INGEST_INGESTER_H_
#define M3SERVE_INGEST_INGESTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ingest/layout.h"
#include "ingest/row_mapper.h"
#include "ingest/task_registry.h"
#include "storage/store.h"

namespace m3serve::ingest {

enum class ProgressMode { kAuto, kBar, kLog, kNone };

struct IngestOptions {
  std::vector<std::string> sources;
  DiscoverOptions discover;
  // Worker threads for parsing and image checks. Default 0: one per core.
  int threads = 0;
  // JSONL file that receives one record per rejected line (appended).
  // Default: <store>/rejects.jsonl.
  std::string rejects_path;
  // Lines longer than this are rejected without being buffered. Default 1 GiB.
  uint64_t max_line_bytes = 1ull << 30;
  ImageCheckOptions images;
  // kAuto: a progress bar on a TTY (stderr), log lines every 10 s otherwise.
  ProgressMode progress = ProgressMode::kAuto;
  // Lines handed to a worker at once (bytes / count). Defaults: 4 MiB / 256.
  size_t chunk_bytes = 4u << 20;
  size_t chunk_lines = 256;
  // Commit to the store when a batch reaches this size. Default 64 MiB.
  size_t commit_bytes = 64u << 20;
  // Read-ahead limit across all chunks in flight. Default 512 MiB (a single
  // larger line is still admitted alone).
  size_t max_inflight_bytes = 512u << 20;
};

// What happened to one source file in this run.
struct FileReport {
  std::string path;
  std::string rel_path;
  storage::GroupKey group;
  std::string status;  // "ingested" | "resumed" | "already ingested" | "failed"
  uint64_t lines = 0;  // lines read in this run (empty lines included)
  uint64_t empty_lines = 0;
  uint64_t rows = 0;   // rows ingested
  uint64_t instances = 0;
  uint64_t rejected = 0;
};

struct IngestReport {
  std::vector<FileReport> files;
  std::vector<std::string> warnings;
  uint64_t lines = 0, empty_lines = 0, rows = 0, instances = 0, rejected = 0;
  uint64_t new_images = 0;
  uint64_t bytes_read = 0;
  double seconds = 0;
  std::string rejects_path;

  // 0: everything ingested; 3: some lines rejected (the rest ingested).
  int ExitCode() const { return rejected > 0 ? 3 : 0; }
};

// Run an ingest into `store` (open for writing). Returns an error only for
// fatal conditions (a SOURCE that is not a dataset, the store cannot be
// written, the rejects file cannot be written); bad lines and unreadable
// files are reported in the IngestReport and never stop the run.
absl::StatusOr<IngestReport> Ingest(storage::Store* store, const TaskRegistry& registry,
                                    const IngestOptions& options);

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_INGESTER_H_
