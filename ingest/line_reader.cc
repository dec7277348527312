#include "ingest/line_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/hash.h"

namespace m3serve::ingest {
namespace {

constexpr size_t kReadSize = 1 << 20;

absl::Status ErrnoStatus(int err, absl::string_view what, const std::string& path) {
  std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  if (err == EISDIR) return absl::InvalidArgumentError(msg);
  return absl::UnavailableError(msg);
}

}  // namespace

absl::StatusOr<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path,
                                                             uint64_t start_offset,
                                                             uint64_t start_line,
                                                             uint64_t max_line_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open", path);
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, " is a directory, not a file"));
  }
  if (start_offset > 0 && ::lseek(fd, static_cast<off_t>(start_offset), SEEK_SET) < 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "seek in", path);
  }
#ifdef POSIX_FADV_SEQUENTIAL
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
  auto r = std::unique_ptr<LineReader>(
      new LineReader(fd, path, start_offset, start_line, max_line_bytes));
  if (start_offset == 0) {
    absl::Status s = r->Fill();
    if (!s.ok()) return s;
    // Skip a UTF-8 byte order mark.
    if (r->end_ - r->pos_ >= 3 && std::memcmp(r->rbuf_.data() + r->pos_, "\xEF\xBB\xBF", 3) == 0) {
      r->pos_ += 3;
      r->offset_ += 3;
    }
  }
  return r;
}

LineReader::LineReader(int fd, std::string path, uint64_t offset, uint64_t line, uint64_t max_line)
    : fd_(fd), path_(std::move(path)), offset_(offset), line_(line), max_line_(max_line),
      rbuf_(kReadSize) {}

LineReader::~LineReader() { ::close(fd_); }

absl::Status LineReader::Fill() {
  if (pos_ == end_) pos_ = end_ = 0;
  if (end_ == rbuf_.size()) {
    // Compact: move the unread tail to the front.
    std::memmove(rbuf_.data(), rbuf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (end_ == rbuf_.size()) rbuf_.resize(rbuf_.size() * 2);
  while (true) {
    ssize_t n = ::read(fd_, rbuf_.data() + end_, rbuf_.size() - end_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read", path_);
    if (n == 0) eof_ = true;
    end_ += static_cast<size_t>(n);
    return absl::OkStatus();
  }
}

absl::Status LineReader::Next(size_t target_bytes, size_t max_lines, LineChunk* chunk) {
  chunk->buf.clear();
  chunk->buf.reserve(target_bytes + (target_bytes >> 2) + kLinePadding);
  chunk->lines.clear();
  chunk->start_offset = offset_;
  chunk->eof = false;
  while (chunk->lines.empty() ||
         (chunk->buf.size() < target_bytes && chunk->lines.size() < max_lines)) {
    if (pos_ == end_) {
      if (eof_) break;
      absl::Status s = Fill();
      if (!s.ok()) return s;
      if (pos_ == end_) break;  // EOF
    }
    // Read one line, possibly across several buffer fills.
    LineChunk::Line line;
    line.offset = chunk->buf.size();
    line.number = ++line_;
    uint64_t line_bytes = 0;  // bytes of the line seen so far (without newline)
    bool oversize = false;
    bool done = false;
    while (!done) {
      if (pos_ == end_) {
        if (eof_) break;
        absl::Status s = Fill();
        if (!s.ok()) return s;
        if (pos_ == end_) break;
      }
      const char* start = rbuf_.data() + pos_;
      size_t avail = end_ - pos_;
      const char* nl = static_cast<const char*>(std::memchr(start, '\n', avail));
      size_t take = nl ? static_cast<size_t>(nl - start) : avail;
      if (!oversize && line_bytes + take > max_line_) {
        oversize = true;
        chunk->buf.resize(line.offset);  // drop what was buffered
      }
      if (!oversize) chunk->buf.append(start, take);
      line_bytes += take;
      pos_ += take + (nl ? 1 : 0);
      offset_ += take + (nl ? 1 : 0);
      done = nl != nullptr;
    }
    if (oversize) {
      line.oversize = line_bytes;
      line.size = 0;
    } else {
      if (chunk->buf.size() > line.offset && chunk->buf.back() == '\r') chunk->buf.pop_back();
      line.size = chunk->buf.size() - line.offset;
    }
    chunk->lines.push_back(line);
  }
  chunk->end_offset = offset_;
  chunk->bytes = chunk->end_offset - chunk->start_offset;
  chunk->eof = eof();
  chunk->buf.append(kLinePadding, ' ');
  return absl::OkStatus();
}

absl::StatusOr<std::string> FileFingerprint(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "stat", path);
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  constexpr size_t kSpan = 64 * 1024;
  std::string head(std::min<uint64_t>(size, kSpan), '\0'), tail;
  ssize_t n = ::pread(fd, head.data(), head.size(), 0);
  if (n >= 0 && size > kSpan) {
    tail.resize(kSpan);
    n = ::pread(fd, tail.data(), tail.size(), static_cast<off_t>(size - kSpan));
  }
  int err = errno;
  ::close(fd);
  if (n < 0) return ErrnoStatus(err, "read", path);
  return absl::StrCat("v1:", size, ":", Hash64(head), ":", Hash64(tail));
}

}  // namespace m3serve::ingest
