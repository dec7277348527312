// File: ingest/ingester.h
//
// The ingest pipeline: one reader thread streams each source file in chunks
// of lines (hashing the bytes as it goes), worker threads (one per core) parse
// JSON, map rows and decode, check and hash images, and the calling thread
// commits results in file and line order: dense ordinals per group, each
// image stored once, progress written in the same atomic batch as the rows it
// covers. So an ingest killed at any point and run again ends with exactly the
// store an uninterrupted run makes, and ingesting a source again adds nothing.
//
// A source file is known by the hash of its content. A file that changed since
// (or while) it was ingested is reported, and its group is ingested again; it
// is never skipped as "already ingested". See source_check.h.
#ifndef M3SERVE_INGEST_INGESTER_H_
#define M3SERVE_INGEST_INGESTER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ingest/layout.h"
#include "ingest/row_mapper.h"
#include "ingest/task_registry.h"
#include "storage/store.h"

namespace m3serve::ingest {

// Where an ingest is, for a progress display (called on the committing thread).
struct IngestProgress {
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;  // of the files started so far
  uint64_t rejected = 0;
  bool final = false;
};

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
  // Re-hash every complete source even when its size, modification time and
  // inode are unchanged (--verify-sources).
  bool verify_sources = false;
  // Lines handed to a worker at once (bytes / count). Defaults: 1 MiB / 256.
  // Chunk buffers are reused, but the read-ahead keeps up to 4 per worker in
  // flight, each first touched page by page: 1 MiB chunks cost a quarter of
  // the page faults of 4 MiB ones and feed the workers as well.
  size_t chunk_bytes = 1u << 20;
  size_t chunk_lines = 256;
  // Commit to the store when a batch reaches this size. Default 64 MiB.
  size_t commit_bytes = 64u << 20;
  // Read-ahead limit across all chunks in flight. Default 512 MiB (a single
  // larger line is still admitted alone).
  size_t max_inflight_bytes = 512u << 20;
  // M3IT-80: the English rows (*_500.jsonl) that translated files take their
  // images from are loaded ahead, on threads of their own, while the files
  // before are read, as long as those loaded and not yet used add up to at
  // most this many bytes of file (their images are held in memory). 0: each
  // is loaded when its first translated file is read. Default 256 MiB.
  uint64_t english_ahead_bytes = 256u << 20;
  // Called after each commit step and once at the end (final = true).
  std::function<void(const IngestProgress&)> on_progress;
  // Tests only: called on the reader thread after each chunk of a file is read.
  std::function<void(const std::string& path, uint64_t end_offset)> after_chunk_for_testing;
};

enum class FileStatus {
  kIngested,         // read from the start
  kResumed,          // continued where an earlier run stopped
  kAlreadyIngested,  // complete and unchanged: nothing to do
  kReingested,       // changed since it was ingested: its group was ingested again
  kChanged,          // changed while it was read: not complete, the next run re-ingests it
  kFailed,           // could not be read (see the rejects file)
};
absl::string_view FileStatusName(FileStatus status);

// What happened to one source file in this run.
struct FileReport {
  std::string path;
  std::string rel_path;
  storage::GroupKey group;
  FileStatus status = FileStatus::kIngested;
  std::string note;    // kReingested / kChanged: how the file changed
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
  uint64_t swept_images = 0;  // images no instance referred to any more, deleted
  // The image index (storage/types.h) was built again: the run changed the
  // store, or it had none (stores of older versions).
  bool image_index_built = false;
  double image_index_seconds = 0;
  uint64_t bytes_read = 0;
  double seconds = 0;
  std::string rejects_path;

  // 0: everything ingested; 3: some lines or files rejected (the rest ingested).
  int ExitCode() const { return rejected > 0 ? 3 : 0; }
};

// Run an ingest into `store` (open for writing). Returns an error only for
// fatal conditions (a SOURCE that is not a dataset, the store or the rejects
// file cannot be written: nothing past the last good commit is recorded, so a
// re-run redoes it); bad lines and unreadable files are reported in the
// IngestReport and never stop the run.
absl::StatusOr<IngestReport> Ingest(storage::Store* store, const TaskRegistry& registry,
                                    const IngestOptions& options);

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_INGESTER_H_
