#include "ingest/source_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace m3serve::ingest {
namespace {

const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

absl::Status CheckRegular(const struct stat& st, const std::string& path) {
  if (S_ISREG(st.st_mode)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(path, " is ", KindOf(st.st_mode), ", not a regular file"));
}

SourceStat FromStat(const struct stat& st) {
  SourceStat s;
  s.size = static_cast<uint64_t>(st.st_size);
  s.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  s.inode = static_cast<uint64_t>(st.st_ino);
  s.device = static_cast<uint64_t>(st.st_dev);
  return s;
}

}  // namespace

absl::Status FileErrorStatus(int err, absl::string_view what, const std::string& path) {
  std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  return absl::UnavailableError(msg);
}

absl::StatusOr<int> OpenRegularFile(const std::string& path, SourceStat* stat) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return FileErrorStatus(errno, "open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return FileErrorStatus(err, "stat", path);
  }
  absl::Status regular = CheckRegular(st, path);
  if (!regular.ok()) {
    ::close(fd);
    return regular;
  }
  // Regular files never block; clear the flag anyway so reads behave normally.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  if (stat) *stat = FromStat(st);
  return fd;
}

absl::StatusOr<SourceStat> StatOpenFile(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return FileErrorStatus(errno, "stat", path);
  return FromStat(st);
}

absl::StatusOr<SourceStat> StatRegularFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return FileErrorStatus(errno, "stat", path);
  absl::Status regular = CheckRegular(st, path);
  if (!regular.ok()) return regular;
  return FromStat(st);
}

absl::StatusOr<std::string> ReadRegularFile(const std::string& path, uint64_t max_bytes) {
  SourceStat st;
  absl::StatusOr<int> fd = OpenRegularFile(path, &st);
  if (!fd.ok()) return fd.status();
  if (st.size > max_bytes) {
    ::close(*fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is ", st.size, " bytes, above the limit of ", max_bytes));
  }
  std::string out;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(*fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(*fd);
      return FileErrorStatus(err, "read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      ::close(*fd);
      return absl::InvalidArgumentError(absl::StrCat(path, " grew above the limit of ", max_bytes,
                                                     " bytes while it was read"));
    }
  }
  ::close(*fd);
  return out;
}

absl::StatusOr<uint64_t> HashFileRange(int fd, const std::string& path, uint64_t begin,
                                       uint64_t end, ChainedContentHash* hash) {
  std::vector<char> buf(1 << 20);
  uint64_t pos = begin;
  while (pos < end) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - pos));
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FileErrorStatus(errno, "read", path);
    if (n == 0) break;
    hash->Update(absl::string_view(buf.data(), static_cast<size_t>(n)));
    pos += static_cast<uint64_t>(n);
  }
  return pos - begin;
}

std::string ContentFingerprint(const ChainedContentHash& hash) {
  return absl::StrCat("xxh3c:", hash.offset(), ":", hash.Digest().Hex());
}

absl::StatusOr<HashedFile> HashWholeFile(const std::string& path) {
  HashedFile out;
  absl::StatusOr<int> fd = OpenRegularFile(path, &out.stat);
  if (!fd.ok()) return fd.status();
  ChainedContentHash hash;
  absl::StatusOr<uint64_t> n = HashFileRange(*fd, path, 0, UINT64_MAX, &hash);
  absl::StatusOr<SourceStat> after = StatOpenFile(*fd, path);
  ::close(*fd);
  if (!n.ok()) return n.status();
  if (!after.ok()) return after.status();
  if (!(*after == out.stat) || *n != out.stat.size) {
    return absl::UnavailableError(absl::StrCat(path, " changed while it was being hashed"));
  }
  out.fingerprint = ContentFingerprint(hash);
  return out;
}

}  // namespace m3serve::ingest
