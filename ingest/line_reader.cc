#include "ingest/line_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"

namespace m3serve::ingest {
namespace {

// The file is read in pieces of this size, each searched for line ends and
// hashed as far as its last whole line right after it is read, so that pass
// reads bytes still in the core's cache. What a chunk's last read brought
// past its last line (at most a piece) is copied to the next chunk.
constexpr size_t kReadPiece = 64 << 10;

}  // namespace

ChunkBuffer& ChunkBuffer::operator=(const ChunkBuffer& o) {
  if (this == &o) return *this;
  size_ = 0;
  Reserve(o.size_);
  if (o.size_ > 0) std::memcpy(data_.get(), o.data_.get(), o.size_);
  size_ = o.size_;
  return *this;
}

ChunkBuffer& ChunkBuffer::operator=(ChunkBuffer&& o) noexcept {
  data_ = std::move(o.data_);
  size_ = o.size_;
  capacity_ = o.capacity_;
  o.size_ = o.capacity_ = 0;
  return *this;
}

void ChunkBuffer::Reserve(size_t n) {
  if (n <= capacity_) return;
  // Grow by half at least, so a line read piece by piece is copied O(1)
  // times per byte.
  const size_t cap = std::max(n, capacity_ + capacity_ / 2);
  std::unique_ptr<char[]> bigger(new char[cap]);
  if (size_ > 0) std::memcpy(bigger.get(), data_.get(), size_);
  data_ = std::move(bigger);
  capacity_ = cap;
}

void ChunkBuffer::Append(const char* p, size_t n) {
  Reserve(size_ + n);
  if (n > 0) std::memcpy(data_.get() + size_, p, n);
  size_ += n;
}

absl::StatusOr<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path,
                                                             uint64_t start_offset,
                                                             uint64_t start_line,
                                                             uint64_t max_line_bytes,
                                                             const HashResume* resume) {
  SourceStat stat;
  absl::StatusOr<int> opened = OpenRegularFile(path, &stat);
  if (!opened.ok()) return opened.status();
  const int fd = *opened;
  auto r = std::unique_ptr<LineReader>(
      new LineReader(fd, path, start_offset, start_line, max_line_bytes, stat));
  if (start_offset > 0) {
    uint64_t from = 0;
    if (resume != nullptr && resume->offset <= start_offset) {
      r->hash_.Restore(resume->chain, resume->offset);
      from = r->hash_.offset();
    }
    absl::StatusOr<uint64_t> fed = HashFileRange(fd, path, from, start_offset, &r->hash_);
    if (!fed.ok()) return fed.status();
    if (r->hash_.offset() != start_offset) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " is shorter (", stat.size, " bytes) than where its ingest stopped (", start_offset,
          ")"));
    }
    if (::lseek(fd, static_cast<off_t>(start_offset), SEEK_SET) < 0) return FileErrorStatus(errno, "seek in", path);
  }
#ifdef POSIX_FADV_SEQUENTIAL
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
  return r;
}

LineReader::LineReader(int fd, std::string path, uint64_t offset, uint64_t line, uint64_t max_line,
                       const SourceStat& stat)
    : fd_(fd), stat_(stat), path_(std::move(path)), offset_(offset), line_(line),
      max_line_(max_line), at_start_(offset == 0) {}

LineReader::~LineReader() { ::close(fd_); }

void LineReader::Consume(const char* p, size_t n) {
  hash_.Update(absl::string_view(p, n));
  offset_ += n;
}

absl::Status LineReader::Fill(ChunkBuffer* buf, size_t want) {
  want = std::max<size_t>(want, 1024);
  buf->Reserve(buf->size() + want + kLinePadding);
  while (true) {
    ssize_t n = ::read(fd_, buf->data() + buf->size(), want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FileErrorStatus(errno, "read", path_);
    if (n == 0) eof_ = true;
    buf->SetSize(buf->size() + static_cast<size_t>(n));
    return absl::OkStatus();
  }
}

absl::StatusOr<uint64_t> LineReader::SkipLine(ChunkBuffer* buf, size_t at, uint64_t seen) {
  uint64_t total = seen;
  while (true) {
    buf->SetSize(at);
    if (eof_) return total;  // the file ends inside the line
    M3SERVE_RETURN_IF_ERROR(Fill(buf, kReadPiece));
    char* p = buf->data() + at;
    const size_t n = buf->size() - at;
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', n));
    if (nl == nullptr) {
      Consume(p, n);
      total += n;
      continue;
    }
    const size_t k = static_cast<size_t>(nl - p);
    Consume(p, k + 1);
    total += k;
    std::memmove(p, nl + 1, n - k - 1);
    buf->SetSize(at + n - k - 1);
    return total;
  }
}

absl::Status LineReader::Next(size_t target_bytes, size_t max_lines, LineChunk* chunk) {
  ChunkBuffer& buf = chunk->buf;
  buf.clear();
  chunk->lines.clear();
  chunk->start_offset = offset_;
  chunk->eof = false;
  buf.Reserve(std::max(carry_.size(), target_bytes) + (target_bytes >> 2) + kLinePadding);
  buf.Append(carry_.data(), carry_.size());
  carry_.clear();
  size_t line_start = 0;  // where the line being looked at starts in buf
  size_t searched = 0;    // bytes of it known to hold no newline
  size_t hashed = 0;      // buf bytes before this are consumed (hashed)
  auto add_line = [&](size_t end, uint64_t oversize) {
    LineChunk::Line line;
    line.offset = line_start;
    line.number = ++line_;
    line.oversize = oversize;
    if (oversize == 0) {
      line.size = end - line_start;
      if (line.size > 0 && buf.data()[end - 1] == '\r') --line.size;
    }
    chunk->lines.push_back(line);
  };
  if (at_start_) {
    while (buf.size() < 3 && !eof_) M3SERVE_RETURN_IF_ERROR(Fill(&buf, kReadPiece));
    // Skip a UTF-8 byte order mark (hashed: it is part of the file).
    if (buf.size() >= 3 && std::memcmp(buf.data(), "\xEF\xBB\xBF", 3) == 0) line_start = 3;
    at_start_ = false;
  }
  while (chunk->lines.size() < std::max<size_t>(max_lines, 1) &&
         (chunk->lines.empty() || line_start < target_bytes)) {
    const size_t from = line_start + searched;
    const char* nl = buf.size() > from
                         ? static_cast<const char*>(std::memchr(buf.data() + from, '\n', buf.size() - from))
                         : nullptr;
    if (nl != nullptr) {
      const size_t end = static_cast<size_t>(nl - buf.data());
      add_line(end, end - line_start > max_line_ ? end - line_start : 0);
      line_start = end + 1;
      searched = 0;
      if (line_start - hashed >= kReadPiece / 4) {
        Consume(buf.data() + hashed, line_start - hashed);
        hashed = line_start;
      }
      continue;
    }
    searched = buf.size() - line_start;
    if (searched > max_line_) {
      // Longer than allowed and not ended yet: the rest is read, hashed and
      // dropped without being buffered.
      Consume(buf.data() + hashed, buf.size() - hashed);
      M3SERVE_ASSIGN_OR_RETURN(uint64_t total, SkipLine(&buf, line_start, searched));
      add_line(line_start, total);
      hashed = line_start;
      searched = 0;
      continue;
    }
    if (eof_) {
      if (buf.size() > line_start) {  // the last line has no newline
        add_line(buf.size(), 0);
        line_start = buf.size();
      }
      break;
    }
    M3SERVE_RETURN_IF_ERROR(Fill(&buf, kReadPiece));
  }
  Consume(buf.data() + hashed, line_start - hashed);
  carry_.Append(buf.data() + line_start, buf.size() - line_start);
  buf.SetSize(line_start);
  buf.Reserve(line_start + kLinePadding);
  std::memset(buf.data() + line_start, ' ', kLinePadding);
  buf.SetSize(line_start + kLinePadding);
  chunk->end_offset = offset_;
  chunk->bytes = chunk->end_offset - chunk->start_offset;
  chunk->eof = eof();
  chunk->hash_chain = hash_.chain();
  chunk->hash_offset = hash_.chain_offset();
  chunk->prefix_hash = hash_.Digest();
  return absl::OkStatus();
}

absl::StatusOr<std::string> LineReader::FinishUnchanged() const {
  absl::StatusOr<SourceStat> now = StatOpenFile(fd_, path_);
  if (!now.ok()) return now.status();
  std::string how;
  if (now->size != stat_.size) {
    how = absl::StrCat("its size went from ", stat_.size, " to ", now->size, " bytes");
  } else if (now->mtime_ns != stat_.mtime_ns) {
    how = "it was modified";
  } else if (hash_.offset() != now->size) {
    how = absl::StrCat(hash_.offset(), " bytes were read of its ", now->size);
  }
  if (how.empty()) return ContentFingerprint(hash_);
  return absl::FailedPreconditionError(absl::StrCat(
      "file changed while it was read (", how, "); its rows are not marked complete, and the "
      "next run ingests it again"));
}

}  // namespace m3serve::ingest
