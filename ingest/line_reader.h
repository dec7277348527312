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

// A byte buffer that grows without initializing its new bytes (the reader
// fills them with read(2) at once); a copy is a deep copy.
class ChunkBuffer {
 public:
  ChunkBuffer() = default;
  ChunkBuffer(const ChunkBuffer& o) { *this = o; }
  ChunkBuffer& operator=(const ChunkBuffer& o);
  ChunkBuffer(ChunkBuffer&& o) noexcept { *this = std::move(o); }
  ChunkBuffer& operator=(ChunkBuffer&& o) noexcept;

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  void clear() { size_ = 0; }
  // Room for at least `n` bytes, keeping the first size() bytes.
  void Reserve(size_t n);
  // The size becomes `n` (<= capacity()); bytes past the old size are not
  // initialized.
  void SetSize(size_t n) { size_ = n; }
  void Append(const char* p, size_t n);

 private:
  std::unique_ptr<char[]> data_;
  size_t size_ = 0, capacity_ = 0;
};

struct LineChunk {
  struct Line {
    size_t offset = 0;        // into buf
    size_t size = 0;          // bytes of the line (no newline / CR)
    uint64_t number = 0;      // 1-based line number in the file
    uint64_t oversize = 0;    // when > 0: the line had this many bytes and was skipped
  };
  // The file's bytes from start_offset to end_offset as read (newlines, CRs
  // and the lines' bytes), then at least kLinePadding more bytes.
  ChunkBuffer buf;
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
  // The file is read straight into the chunk's buffer (whose capacity is
  // reused); only the start of a line that does not fit is copied, to the
  // next chunk.
  absl::Status Next(size_t target_bytes, size_t max_lines, LineChunk* chunk);

  bool eof() const { return eof_ && carry_.size() == 0; }
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
  // Read more of the file into `buf` after its size() (growing it by up to
  // `want` bytes, at least one KiB); sets eof_ when none are left.
  absl::Status Fill(ChunkBuffer* buf, size_t want);
  void Consume(const char* p, size_t n);  // advance offset_ over n bytes, hashing them
  // Skip the rest of an oversize line whose first `seen` bytes were
  // consumed; what follows its newline is left in `buf` from `at` on.
  absl::StatusOr<uint64_t> SkipLine(ChunkBuffer* buf, size_t at, uint64_t seen);

  int fd_;
  SourceStat stat_;
  ChainedContentHash hash_;
  std::string path_;
  uint64_t offset_;  // file offset of buffer position pos_
  uint64_t line_;    // lines consumed so far
  uint64_t max_line_;
  ChunkBuffer carry_;  // bytes read past the last chunk's end (a line's start)
  bool eof_ = false;     // read(2) returned 0
  bool at_start_;        // nothing consumed yet from offset 0 (a BOM may follow)
};

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_LINE_READER_H_
