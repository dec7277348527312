#include "storage/image_packs.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace m3serve::storage {
namespace {

namespace fs = std::filesystem;

constexpr char kFileMagic[] = "M3PACK01";
constexpr char kRecordMagic[] = "M3IR";
constexpr char kSuffix[] = ".pack";

absl::Status IoError(int err, absl::string_view what, const std::string& path) {
  std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOSPC || err == EFBIG || err == EDQUOT) return absl::ResourceExhaustedError(msg);
  return absl::UnavailableError(msg);
}

void PutLe64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}

uint64_t GetLe64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// Write all of `iov` (advancing it), retrying short writes and EINTR.
absl::Status WriteAll(int fd, struct iovec* iov, int n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::writev(fd, iov, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return IoError(errno, "write", path);
    if (w == 0) return IoError(ENOSPC, "write", path);
    size_t left = static_cast<size_t>(w);
    while (n > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --n;
    }
    if (n > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return absl::OkStatus();
}

void SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

ImagePacks::ImagePacks(std::string dir, bool read_only, uint64_t file_bytes)
    : dir_(std::move(dir)), read_only_(read_only), file_bytes_(file_bytes) {}

ImagePacks::~ImagePacks() {
  {
    std::lock_guard<std::mutex> lock(bg_mu_);
    bg_stop_ = true;
  }
  bg_cv_.notify_all();
  for (std::thread& t : bg_) {
    if (t.joinable()) t.join();  // each finishes what it was given
  }
  for (auto& [pack, fd] : fds_) ::close(fd);
}

void ImagePacks::InBackground(int fd, uint64_t pack, uint64_t from, uint64_t to, Background what) {
  {
    std::unique_lock<std::mutex> lock(bg_mu_);
    const int lane = static_cast<int>(what);
    if (!bg_[lane].joinable()) bg_[lane] = std::thread([this, lane] { BackgroundLoop(lane); });
    bg_cv_.wait(lock, [&] { return bg_queue_[0].size() + bg_queue_[1].size() < kMaxBackground; });
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return;  // only the early start is lost: SyncWriters and the close still sync
    bg_queue_[lane].push_back({copy, pack, from, to});
    ++bg_requested_;
  }
  bg_cv_.notify_all();
}

size_t ImagePacks::BackgroundPending() {
  std::lock_guard<std::mutex> lock(bg_mu_);
  return static_cast<size_t>(bg_requested_ - bg_done_);
}

void ImagePacks::BackgroundLoop(int lane) {
  std::deque<Request>& queue = bg_queue_[lane];
  std::unique_lock<std::mutex> lock(bg_mu_);
  while (true) {
    bg_cv_.wait(lock, [&] { return bg_stop_ || !queue.empty(); });
    if (queue.empty()) return;  // stopping, and nothing left
    const Request r = queue.front();
    queue.pop_front();
    bg_cv_.notify_all();  // room for a waiting writer
    lock.unlock();
    absl::Status s;
    if (lane == static_cast<int>(Background::kWriteBack)) {
      ::sync_file_range(r.fd, static_cast<off_t>(r.from), static_cast<off_t>(r.to - r.from), SYNC_FILE_RANGE_WRITE);
    } else if (background_sync_(r.fd) != 0 && errno != EINVAL && errno != EROFS) {
      s = IoError(errno, "sync", FilePath(r.pack));
    }
    ::close(r.fd);
    lock.lock();
    if (!s.ok() && background_error_.ok()) {
      background_error_ = s;
      failed_in_background_ = true;
    }
    ++bg_done_;
    bg_cv_.notify_all();
  }
}

absl::Status ImagePacks::BackgroundError() {
  if (!failed_in_background_) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(bg_mu_);  // not writers_mu_: the caller holds a writer's mutex
  return background_error_;
}

void ImagePacks::WaitForBackground() {
  std::unique_lock<std::mutex> lock(bg_mu_);
  const uint64_t target = bg_requested_;
  bg_cv_.wait(lock, [&] { return bg_done_ >= target; });
}

absl::StatusOr<std::unique_ptr<ImagePacks>> ImagePacks::Open(const std::string& store_dir, bool read_only,
                                                               uint64_t file_bytes) {
  std::unique_ptr<ImagePacks> p(
      new ImagePacks((fs::path(store_dir) / "packs").string(), read_only, std::max<uint64_t>(file_bytes, 1)));
  M3SERVE_ASSIGN_OR_RETURN(auto files, p->List());
  for (const auto& [number, path] : files) {
    std::error_code ec;
    uint64_t size = fs::file_size(path, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("stat ", path, ": ", ec.message()));
    p->at_open_.emplace_back(path, size);
    p->next_ = std::max<uint64_t>(p->next_, number + 1);
  }
  return p;
}

std::string ImagePacks::FilePath(uint64_t pack) const {
  return absl::StrFormat("%s/%08d%s", dir_, pack, kSuffix);
}

absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> ImagePacks::List() const {
  std::vector<std::pair<uint64_t, std::string>> out;
  std::error_code ec;
  if (!fs::exists(dir_, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    uint64_t number = 0;
    if (name.size() <= sizeof(kSuffix) - 1 || !name.ends_with(kSuffix) ||
        !absl::SimpleAtoi(name.substr(0, name.size() - (sizeof(kSuffix) - 1)), &number)) {
      continue;  // not ours (an editor's backup, say): never read or removed
    }
    out.emplace_back(number, e.path().string());
  }
  if (ec) return absl::UnavailableError(absl::StrCat("list ", dir_, ": ", ec.message()));
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<int> ImagePacks::ReadFd(uint64_t pack) const {
  {
    std::shared_lock<std::shared_mutex> lock(fds_mu_);
    auto it = fds_.find(pack);
    if (it != fds_.end()) return it->second;
  }
  std::unique_lock<std::shared_mutex> lock(fds_mu_);
  auto it = fds_.find(pack);
  if (it != fds_.end()) return it->second;
  const std::string path = FilePath(pack);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::DataLossError(absl::StrCat("image pack ", path, " is missing"));
    return IoError(errno, "open", path);
  }
  fds_.emplace(pack, fd);
  return fd;
}

absl::Status ImagePacks::Read(const PackLocation& where, uint64_t size, const Hash128& hash,
                              std::string* out, bool check_content) const {
  M3SERVE_ASSIGN_OR_RETURN(int fd, ReadFd(where.pack));
  // A corrupt record's size must not become an allocation: the record has to
  // fit in the file.
  struct stat st;
  if (::fstat(fd, &st) != 0) return IoError(errno, "stat", FilePath(where.pack));
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (where.offset > file_size || size > file_size - where.offset ||
      kRecordHeaderBytes > file_size - where.offset - size) {
    return absl::DataLossError(absl::StrCat("image pack ", FilePath(where.pack), " (", file_size,
                                            " bytes) ends before the ", size, " bytes of image ", hash.Hex(),
                                            " at offset ", where.offset));
  }
  char header[kRecordHeaderBytes];
  out->resize(size);
  struct iovec iov[2] = {{header, sizeof(header)}, {out->data(), size}};
  const uint64_t want = sizeof(header) + size;
  uint64_t done = 0;
  bool first = true;
  while (done < want) {
    // One preadv for header and bytes; a signal or a huge image may need more.
    ssize_t r;
    if (first) {
      r = ::preadv(fd, iov, 2, static_cast<off_t>(where.offset));
    } else if (done < sizeof(header)) {
      r = ::pread(fd, header + done, sizeof(header) - done, static_cast<off_t>(where.offset + done));
    } else {
      r = ::pread(fd, out->data() + (done - sizeof(header)), want - done, static_cast<off_t>(where.offset + done));
    }
    first = false;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return IoError(errno, "read", FilePath(where.pack));
    if (r == 0) {
      return absl::DataLossError(absl::StrCat("image pack ", FilePath(where.pack), " ends before the ", size,
                                              " bytes of image ", hash.Hex(), " at offset ", where.offset));
    }
    done += static_cast<uint64_t>(r);
  }
  if (std::memcmp(header, kRecordMagic, 4) != 0 || GetLe64(header + 8) != size ||
      std::memcmp(header + 16, hash.bytes.data(), 16) != 0) {
    return absl::DataLossError(absl::StrCat("image pack ", FilePath(where.pack), ": no record of image ",
                                            hash.Hex(), " at offset ", where.offset, " (corrupt)"));
  }
  if (check_content && ContentHash(*out) != hash) {
    return absl::DataLossError(absl::StrCat("image pack ", FilePath(where.pack), ": the bytes of image ",
                                            hash.Hex(), " at offset ", where.offset,
                                            " do not hash to it (corrupt)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::pair<uint64_t, int>> ImagePacks::CreateFile() {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("create ", dir_, ": ", ec.message()));
  while (true) {
    const uint64_t number = next_++;
    const std::string path = FilePath(number);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST) continue;  // made by a run killed after listing (never reused)
    if (fd < 0) return IoError(errno, "create", path);
    struct iovec iov = {const_cast<char*>(kFileMagic), kFileHeaderBytes};
    absl::Status s = WriteAll(fd, &iov, 1, path);
    if (!s.ok()) {
      ::close(fd);
      return s;
    }
    SyncDir(dir_);  // the name survives a power loss once its records are synced
    return std::make_pair(number, fd);
  }
}

absl::StatusOr<std::unique_ptr<PackWriter>> ImagePacks::NewWriter() {
  if (read_only_) return absl::FailedPreconditionError("store is open read-only");
  std::unique_ptr<PackWriter> w(new PackWriter(this));
  Register(w.get());
  return w;
}

void ImagePacks::Register(PackWriter* w) {
  std::lock_guard<std::mutex> lock(writers_mu_);
  writers_.insert(w);
}

void ImagePacks::Unregister(PackWriter* w) {
  std::lock_guard<std::mutex> lock(writers_mu_);
  writers_.erase(w);
}

void ImagePacks::RecordCloseError(const absl::Status& s) {
  if (s.ok()) return;
  std::lock_guard<std::mutex> lock(writers_mu_);
  if (close_error_.ok()) close_error_ = s;
}

absl::Status ImagePacks::SyncWriters() {
  // A background sync that failed has consumed the file's error: it is kept
  // in background_error_ once the requests are done.
  WaitForBackground();
  M3SERVE_RETURN_IF_ERROR(BackgroundError());
  std::lock_guard<std::mutex> lock(writers_mu_);
  M3SERVE_RETURN_IF_ERROR(close_error_);
  for (PackWriter* w : writers_) M3SERVE_RETURN_IF_ERROR(w->Sync());
  return absl::OkStatus();
}

absl::Status ImagePacks::CheckFiles() const {
  for (const auto& [path, size] : at_open_) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      return absl::DataLossError(absl::StrCat("store file ", path, " is gone: ", std::strerror(errno)));
    }
    if (static_cast<uint64_t>(st.st_size) < size) {
      return absl::DataLossError(
          absl::StrCat("store file ", path, " has ", st.st_size, " bytes, the store expects at least ", size));
    }
  }
  return absl::OkStatus();
}

absl::Status ImagePacks::LinkTo(const std::string& dir) const {
  M3SERVE_ASSIGN_OR_RETURN(auto files, List());
  if (files.empty()) return absl::OkStatus();
  const fs::path target = fs::path(dir) / "packs";
  std::error_code ec;
  fs::create_directories(target, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("create ", target.string(), ": ", ec.message()));
  for (const auto& [number, path] : files) {
    const fs::path to = target / fs::path(path).filename();
    if (::link(path.c_str(), to.c_str()) == 0) continue;
    if (errno != EXDEV && errno != EPERM && errno != EMLINK) return IoError(errno, "link", to.string());
    fs::copy_file(path, to, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("copy ", path, " to ", to.string(), ": ", ec.message()));
    int fd = ::open(to.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::fdatasync(fd);
      ::close(fd);
    }
  }
  SyncDir(target.string());
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ImagePacks::FileBytes(uint64_t pack) const {
  struct stat st;
  const std::string path = FilePath(pack);
  if (::stat(path.c_str(), &st) != 0) return IoError(errno, "stat", path);
  return static_cast<uint64_t>(st.st_size);
}

absl::StatusOr<uint64_t> ImagePacks::RemoveUnused(const absl::flat_hash_set<uint64_t>& live) {
  if (read_only_) return absl::FailedPreconditionError("store is open read-only");
  M3SERVE_ASSIGN_OR_RETURN(auto files, List());
  absl::flat_hash_set<uint64_t> writing;
  {
    std::lock_guard<std::mutex> lock(writers_mu_);
    for (PackWriter* w : writers_) writing.insert(w->pack());
  }
  uint64_t removed = 0;
  for (const auto& [number, path] : files) {
    if (live.contains(number) || writing.contains(number)) continue;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return IoError(errno, "remove", path);
    ++removed;
    std::unique_lock<std::shared_mutex> lock(fds_mu_);
    auto it = fds_.find(number);
    if (it != fds_.end()) {
      ::close(it->second);
      fds_.erase(it);
    }
  }
  if (removed > 0) SyncDir(dir_);
  return removed;
}

// ---------------------------------------------------------------------------

PackWriter::~PackWriter() {
  packs_->Unregister(this);  // first: SyncWriters locks writers_mu_, then a writer's mu_
  absl::Status closed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed = CloseFile();
  }
  packs_->RecordCloseError(closed);
}

uint64_t PackWriter::pack() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pack_;
}

absl::Status PackWriter::CloseFile() {
  if (fd_ < 0) return absl::OkStatus();
  absl::Status s;
  if (::fdatasync(fd_) != 0 && errno != EINVAL && errno != EROFS) {
    s = IoError(errno, "sync", packs_->FilePath(pack_));
  }
  ::close(fd_);
  fd_ = -1;
  return s;
}

absl::Status PackWriter::Sync() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0 || !failed_.ok()) return failed_;
  if (::fdatasync(fd_) != 0 && errno != EINVAL && errno != EROFS) {
    failed_ = IoError(errno, "sync", packs_->FilePath(pack_));
  } else {
    synced_ = size_;
  }
  return failed_;
}

absl::StatusOr<PackLocation> PackWriter::Append(const Hash128& hash, absl::string_view bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (failed_.ok()) failed_ = packs_->BackgroundError();  // a sync of the bytes before failed
  if (!failed_.ok()) return failed_;
  const uint64_t record = ImagePacks::kRecordHeaderBytes + bytes.size();
  if (fd_ < 0 || (size_ > ImagePacks::kFileHeaderBytes && size_ + record > packs_->file_bytes_)) {
    absl::Status closed = CloseFile();
    if (!closed.ok()) return failed_ = closed;
    absl::StatusOr<std::pair<uint64_t, int>> file = packs_->CreateFile();
    if (!file.ok()) return failed_ = file.status();
    pack_ = file->first;
    fd_ = file->second;
    size_ = ImagePacks::kFileHeaderBytes;
    written_back_ = 0;
    synced_ = 0;
  }
  char header[ImagePacks::kRecordHeaderBytes] = {};
  std::memcpy(header, kRecordMagic, 4);
  PutLe64(header + 8, bytes.size());
  std::memcpy(header + 16, hash.bytes.data(), 16);
  struct iovec iov[2] = {{header, sizeof(header)}, {const_cast<char*>(bytes.data()), bytes.size()}};
  absl::Status s = WriteAll(fd_, iov, 2, packs_->FilePath(pack_));
  if (!s.ok()) return failed_ = s;  // a torn record: nothing points at it
  PackLocation where{pack_, size_};
  size_ += record;
  if (size_ - written_back_ >= packs_->write_back_bytes_) {
    // Start writing the new bytes to disk now, as RocksDB's bytes_per_sync
    // does: the disk works while the CPU parses, and the fdatasync before a
    // flush or at close finds little left to do.
    packs_->InBackground(fd_, pack_, written_back_, size_, ImagePacks::Background::kWriteBack);
    written_back_ = size_;
  }
  if (size_ - synced_ >= packs_->sync_bytes_) {
    // And make them durable as we go: sync_file_range only hands bytes to
    // the device, and the sync after the last write still has to flush all
    // that its cache holds, however early they were handed over. Syncing
    // every sync_bytes_ on the way leaves little for the end. Both run on
    // background threads: the writer goes on parsing while the disk works.
    packs_->InBackground(fd_, pack_, 0, size_, ImagePacks::Background::kSync);
    synced_ = size_;
  }
  return where;
}

}  // namespace m3serve::storage
