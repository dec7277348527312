// File: ingest/line_reader.h
//
// Stream a JSONL file as chunks of whole lines, never holding the file in
// memory: a line may be hundreds of megabytes, a file tens of gigabytes.
// Handles a UTF-8 BOM at the start, CRLF endings and a last line without a
// newline. Lines longer than the configured maximum are skipped without being
// buffered and reported as oversize.
#ifndef M3SERVE_INGEST_LINE_READER_H_
#define M3SERVE_INGEST_LINE_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/hash.h"
#include "ingest/source_file.h"

namespace m3serve::ingest {

// Extra bytes after the last line so JSON parsers may read past the end.
inline constexpr size_t kLinePadding = 64;

struct LineChunk {
  struct Line {
    size_t offset = 0;        // into buf
    size_t size = 0;          // bytes of the line (no newline / CR)
    uint64_t number = 0;      // 1-based line number in the file
    uint64_t oversize = 0;    // when > 0: the line had this many bytes and was skipped
  };
  std::string buf;            // line bytes back to back, then kLinePadding spaces
  std::vector<Line> lines;
  uint64_t start_offset = 0;  // file offset of the first line
  uint64_t end_offset = 0;    // file offset after the last line (next line's start)
  uint64_t bytes = 0;         // file bytes this chunk covers
  bool eof = false;           // no lines follow this chunk
  // Content hash state after this chunk (see ChainedContentHash).
  Hash128 hash_chain;
  uint64_t hash_offset = 0;
  Hash128 prefix_hash;  // content hash of the file up to end_offset

  absl::string_view text(const Line& l) const { return absl::string_view(buf.data() + l.offset, l.size); }
};

class LineReader {
 public:
  // Where a content hash left off: the chain state at a block boundary.
  struct HashResume {
    Hash128 chain;
    uint64_t offset = 0;
  };

  // Open `path` (a regular file; see OpenRegularFile) and position it at
  // `start_offset` (a line start), numbering the next line `start_line + 1`.
  // The content hash covers the file from byte 0: bytes before `start_offset`
  // are hashed from `resume` on (from 0 without it). NotFound /
  // PermissionDenied / Unavailable / InvalidArgument with the path.
  static absl::StatusOr<std::unique_ptr<LineReader>> Open(const std::string& path,
                                                          uint64_t start_offset,
                                                          uint64_t start_line,
                                                          uint64_t max_line_bytes,
                                                          const HashResume* resume = nullptr);
  ~LineReader();

  // Replace `chunk` with the next lines: at least one line unless at EOF,
  // then more while the chunk holds fewer than `target_bytes` and `max_lines`.
  absl::Status Next(size_t target_bytes, size_t max_lines, LineChunk* chunk);

  bool eof() const { return eof_ && pos_ == end_; }
  uint64_t offset() const { return offset_; }
  // What stat() said when the file was opened.
  const SourceStat& stat_at_open() const { return stat_; }

  // At EOF: the file's content fingerprint (ContentFingerprint), or
  // FailedPrecondition saying how the file changed while it was read (its
  // size, modification time or inode differ from when it was opened, or the
  // bytes read are not its size).
  absl::StatusOr<std::string> FinishUnchanged() const;

 private:
  LineReader(int fd, std::string path, uint64_t offset, uint64_t line, uint64_t max_line,
             const SourceStat& stat);
  absl::Status Fill();  // read more into the buffer; sets eof_
  void Consume(size_t n);  // advance pos_ / offset_ over n bytes, hashing them

  int fd_;
  SourceStat stat_;
  ChainedContentHash hash_;
  std::string path_;
  uint64_t offset_;  // file offset of buffer position pos_
  uint64_t line_;    // lines consumed so far
  uint64_t max_line_;
  std::vector<char> rbuf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
};

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_LINE_READER_H_
