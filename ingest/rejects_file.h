// File: ingest/rejects_file.h
//
// The rejects file: one JSON record per rejected line, appended. Records are
// written (and synced) before the store commit that covers their lines, and
// the commit records the file's length; a run that finds the file longer than
// the committed length cuts it back first. So a kill at any point neither
// loses nor repeats a record, and a failed write fails the commit.
#ifndef M3SERVE_INGEST_REJECTS_FILE_H_
#define M3SERVE_INGEST_REJECTS_FILE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace m3serve::ingest {

class RejectsFile {
 public:
  // Open (create) `path` for appending. When it is a regular file longer than
  // `committed_length`, cut it back to that length. Unavailable naming the
  // path when it cannot be opened.
  static absl::StatusOr<std::unique_ptr<RejectsFile>> Open(
      const std::string& path, std::optional<uint64_t> committed_length);
  ~RejectsFile();

  // Append `records` (one line each) and sync. Unavailable naming the path and
  // the reason (e.g. "No space left on device") when any byte is not written.
  absl::Status Append(const std::vector<std::string>& records);

  // Bytes in the file after the last Append.
  uint64_t length() const { return length_; }

  // The store key under which a store records the committed length of the
  // rejects file at `path` (made absolute).
  static std::string StateKey(const std::string& path);

 private:
  RejectsFile(int fd, std::string path, uint64_t length)
      : fd_(fd), path_(std::move(path)), length_(length) {}
  int fd_;
  std::string path_;
  uint64_t length_;
};

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_REJECTS_FILE_H_
