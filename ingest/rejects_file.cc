#include "ingest/rejects_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace m3serve::ingest {
namespace {

absl::Status WriteError(int err, const std::string& path) {
  return absl::UnavailableError(
      absl::StrCat("cannot write the rejects file ", path, ": ", std::strerror(err)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RejectsFile>> RejectsFile::Open(
    const std::string& path, std::optional<uint64_t> committed_length) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open the rejects file ", path, ": ", std::strerror(errno)));
  }
  // O_NONBLOCK only so opening a FIFO without a reader fails instead of
  // waiting; writes block as usual.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  struct stat st;
  uint64_t length = 0;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    length = static_cast<uint64_t>(st.st_size);
    if (committed_length && length > *committed_length) {
      // Records of a run that stopped before committing the lines they are for.
      if (::ftruncate(fd, static_cast<off_t>(*committed_length)) != 0) {
        int err = errno;
        ::close(fd);
        return WriteError(err, path);
      }
      length = *committed_length;
    }
  }
  return std::unique_ptr<RejectsFile>(new RejectsFile(fd, path, length));
}

RejectsFile::~RejectsFile() { ::close(fd_); }

absl::Status RejectsFile::Append(const std::vector<std::string>& records) {
  std::string out;
  for (const auto& r : records) absl::StrAppend(&out, r, "\n");
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::write(fd_, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return WriteError(n < 0 ? errno : ENOSPC, path_);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS) return WriteError(errno, path_);
  length_ += out.size();
  return absl::OkStatus();
}

std::string RejectsFile::StateKey(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(path, ec);
  return absl::StrCat("rejects_length|", (ec ? std::filesystem::path(path) : p).lexically_normal().string());
}

}  // namespace m3serve::ingest
