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

}  // namespace

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
  if (start_offset == 0) {
    absl::Status s = r->Fill();
    if (!s.ok()) return s;
    // Skip a UTF-8 byte order mark.
    if (r->end_ - r->pos_ >= 3 && std::memcmp(r->rbuf_.data() + r->pos_, "\xEF\xBB\xBF", 3) == 0) {
      r->Consume(3);
    }
  }
  return r;
}

LineReader::LineReader(int fd, std::string path, uint64_t offset, uint64_t line, uint64_t max_line,
                       const SourceStat& stat)
    : fd_(fd), stat_(stat), path_(std::move(path)), offset_(offset), line_(line),
      max_line_(max_line), rbuf_(kReadSize) {}

void LineReader::Consume(size_t n) {
  hash_.Update(absl::string_view(rbuf_.data() + pos_, n));
  pos_ += n;
  offset_ += n;
}

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
    if (n < 0) return FileErrorStatus(errno, "read", path_);
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
      Consume(take + (nl ? 1 : 0));
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
  chunk->hash_chain = hash_.chain();
  chunk->hash_offset = hash_.chain_offset();
  chunk->prefix_hash = hash_.Digest();
  chunk->buf.append(kLinePadding, ' ');
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
