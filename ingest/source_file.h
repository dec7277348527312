// File: ingest/source_file.h
//
// Source files as the ingest sees them: opened for reading only when they are
// regular files (checked without blocking, so a FIFO or a device named like a
// data file is refused instead of hanging the run), described by what stat()
// says, and identified by the hash of their content.
#ifndef M3SERVE_INGEST_SOURCE_FILE_H_
#define M3SERVE_INGEST_SOURCE_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/hash.h"

namespace m3serve::ingest {

// What stat() says about a file; equal stats mean "not modified" to the quick
// check of a re-run.
struct SourceStat {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  uint64_t device = 0;
  bool operator==(const SourceStat&) const = default;
};

// The status for a failed file system call: NotFound (ENOENT),
// PermissionDenied (EACCES, EPERM) or Unavailable, "<what> <path>: <reason>".
absl::Status FileErrorStatus(int err, absl::string_view what, const std::string& path);

// Open `path` read-only if it is a regular file (symlinks followed), never
// blocking. NotFound / PermissionDenied / Unavailable with the path;
// InvalidArgument naming the kind ("is a FIFO (named pipe), not a regular
// file") for anything else. The caller closes the descriptor.
absl::StatusOr<int> OpenRegularFile(const std::string& path, SourceStat* stat = nullptr);

// fstat() of an open descriptor.
absl::StatusOr<SourceStat> StatOpenFile(int fd, const std::string& path);

// stat() of a path, without opening it; InvalidArgument when not a regular file.
absl::StatusOr<SourceStat> StatRegularFile(const std::string& path);

// The whole content of a regular file of at most `max_bytes` bytes.
absl::StatusOr<std::string> ReadRegularFile(const std::string& path, uint64_t max_bytes);

// Feed bytes [begin, end) of the open file to `hash` (end past the file's end:
// up to the end). Returns the bytes fed.
absl::StatusOr<uint64_t> HashFileRange(int fd, const std::string& path, uint64_t begin, uint64_t end,
                                       ChainedContentHash* hash);

// The content identity stored in ingest progress: "xxh3c:<size>:<hash hex>".
std::string ContentFingerprint(const ChainedContentHash& hash);

// Read and hash a whole regular file: its ContentFingerprint and its stat.
struct HashedFile {
  std::string fingerprint;
  SourceStat stat;
};
absl::StatusOr<HashedFile> HashWholeFile(const std::string& path);

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_SOURCE_FILE_H_
