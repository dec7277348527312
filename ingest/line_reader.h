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

  absl::string_view text(const Line& l) const { return absl::string_view(buf.data() + l.offset, l.size); }
};

class LineReader {
 public:
  // Open `path` and position it at `start_offset` (a line start), numbering
  // the next line `start_line + 1`. NotFound / PermissionDenied / Unavailable
  // with the path in the message.
  static absl::StatusOr<std::unique_ptr<LineReader>> Open(const std::string& path,
                                                          uint64_t start_offset,
                                                          uint64_t start_line,
                                                          uint64_t max_line_bytes);
  ~LineReader();

  // Replace `chunk` with the next lines: at least one line unless at EOF,
  // then more while the chunk holds fewer than `target_bytes` and `max_lines`.
  absl::Status Next(size_t target_bytes, size_t max_lines, LineChunk* chunk);

  bool eof() const { return eof_ && pos_ == end_; }
  uint64_t offset() const { return offset_; }

 private:
  LineReader(int fd, std::string path, uint64_t offset, uint64_t line, uint64_t max_line);
  absl::Status Fill();  // read more into the buffer; sets eof_

  int fd_;
  std::string path_;
  uint64_t offset_;  // file offset of buffer position pos_
  uint64_t line_;    // lines consumed so far
  uint64_t max_line_;
  std::vector<char> rbuf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
};

// A cheap identity of a file's content: size plus hashes of its first and last
// 64 KiB. Used to recognise a source on re-ingest and refuse one that changed.
absl::StatusOr<std::string> FileFingerprint(const std::string& path);

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_LINE_READER_H_
