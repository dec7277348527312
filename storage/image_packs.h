// File: storage/image_packs.h
//
// Image pack files: where a store keeps the encoded bytes of the images an
// ingest writes. Ingest workers append to pack files of their own (one open
// file per writer, a new file every `file_bytes`), so image bytes reach the
// disk in one copy instead of passing through RocksDB's write batch, memtable
// and blob files. The image's metadata record in RocksDB names its location
// (record_codec.h PackLocation); an image is in the store once that record is.
//
// Layout, under <store>/packs/: files named <number>.pack (8 decimal digits),
// each starting with the 8 bytes "M3PACK01", then records: a 32-byte header
// ("M3IR", 4 zero bytes, the length as 8 little-endian bytes, the 16-byte
// content hash) followed by the bytes. Files are append-only and never reused:
// a new writer always creates a new file, so a published checkpoint (hard
// links) never sees them change. Bytes no record refers to any more (an image
// deleted by a sweep, or written by a run killed before its commit) stay until
// their whole file is unreferenced; RemoveUnused then deletes it (the sweep
// first moves the live images out of files that are mostly dead bytes).
//
// Storage-internal (store.cc); callers use Store and ImageWriter.
#ifndef M3SERVE_STORAGE_IMAGE_PACKS_H_
#define M3SERVE_STORAGE_IMAGE_PACKS_H_

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/hash.h"
#include "storage/record_codec.h"

namespace m3serve::storage {

class PackWriter;

class ImagePacks {
 public:
  static constexpr size_t kFileHeaderBytes = 8;
  static constexpr size_t kRecordHeaderBytes = 32;

  // The packs of the store at `store_dir` (the folder may not exist yet: a
  // store without pack files). Lists the files there, for CheckFiles.
  static absl::StatusOr<std::unique_ptr<ImagePacks>> Open(const std::string& store_dir, bool read_only,
                                                          uint64_t file_bytes);
  ~ImagePacks();
  ImagePacks(const ImagePacks&) = delete;
  ImagePacks& operator=(const ImagePacks&) = delete;

  // The `size` bytes of the image `hash` at `where`, checked against the
  // record header and (with `check_content`) re-hashed: DataLoss naming the
  // file when the file is missing or short, its record header is not the
  // image's, or the bytes do not hash to it.
  absl::Status Read(const PackLocation& where, uint64_t size, const Hash128& hash, std::string* out,
                    bool check_content = true) const;

  // A writer appending to new files of its own. FailedPrecondition when
  // read-only.
  absl::StatusOr<std::unique_ptr<PackWriter>> NewWriter();
  // Make everything the open writers wrote durable (fdatasync), before a
  // RocksDB flush persists the records that point at it. Also the error of a
  // writer whose file failed to sync when it was closed (kept, so Store::Flush
  // at the end of an ingest reports it).
  absl::Status SyncWriters();

  // Every pack file seen at open is still there, at least as long as it was:
  // DataLoss naming the first that is not.
  absl::Status CheckFiles() const;
  // Hard-link (copy across file systems) every pack file into `dir`/packs.
  absl::Status LinkTo(const std::string& dir) const;
  // Delete the pack files whose number is not in `live` and that no open
  // writer is writing. Returns the number of files deleted. No other thread
  // may be reading (their read descriptors are closed).
  absl::StatusOr<uint64_t> RemoveUnused(const absl::flat_hash_set<uint64_t>& live);

  // The size of one pack file now.
  absl::StatusOr<uint64_t> FileBytes(uint64_t pack) const;

  // Writers start the writeback of their new bytes every `write_back_bytes`
  // and sync them every `sync_bytes`, on the background threads (defaults
  // 4 MiB and 32 MiB). At most kMaxBackground requests wait for them; a writer
  // that would add one more waits (the disk is that far behind). Call before
  // the first writer.
  static constexpr size_t kMaxBackground = 16;
  static constexpr int kLanes = 2;  // background threads: writeback starts, syncs
  void SetSyncIntervals(uint64_t write_back_bytes, uint64_t sync_bytes) {
    write_back_bytes_ = std::max<uint64_t>(write_back_bytes, 1);
    sync_bytes_ = std::max<uint64_t>(sync_bytes, 1);
  }
  // Background requests handed over and not yet done (a test's view).
  size_t BackgroundPending();
  // Tests: the call the sync thread syncs with (default fdatasync), to
  // make it fail.
  void SetBackgroundSyncForTesting(int (*sync)(int)) { background_sync_ = sync; }

  const std::string& dir() const { return dir_; }
  std::string FilePath(uint64_t pack) const;

 private:
  friend class PackWriter;
  ImagePacks(std::string dir, bool read_only, uint64_t file_bytes);
  // (number, path) of every pack file in the folder, by number.
  absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> List() const;
  // Create the next new pack file, its header written: (number, fd).
  absl::StatusOr<std::pair<uint64_t, int>> CreateFile();
  absl::StatusOr<int> ReadFd(uint64_t pack) const;
  void Register(PackWriter* w);
  void Unregister(PackWriter* w);
  void RecordCloseError(const absl::Status& s);
  // Writers hand the writeback and sync of the bytes they have written to
  // background threads, so an ingest worker never waits for the disk on the
  // way (only SyncWriters and a file's close wait). Each kind has its own
  // thread (lane): a sync waits for the device for tens of milliseconds, and
  // the writeback starts asked for meanwhile must not wait behind it, or the
  // disk idles while the CPU fills the page cache. `fd` is duplicated: the
  // writer may close its own. A failed sync is kept like a close error, and
  // every writer's next Append fails with it.
  enum class Background { kWriteBack = 0, kSync = 1 };
  void InBackground(int fd, uint64_t pack, uint64_t from, uint64_t to, Background what);
  void BackgroundLoop(int lane);
  // Wait until every request handed over so far is done.
  void WaitForBackground();
  // The failed background sync, if there was one.
  absl::Status BackgroundError();

  const std::string dir_;
  const bool read_only_;
  const uint64_t file_bytes_;
  uint64_t write_back_bytes_ = 4 << 20;
  uint64_t sync_bytes_ = 32 << 20;
  int (*background_sync_)(int) = &::fdatasync;
  std::atomic<uint64_t> next_{1};
  std::vector<std::pair<std::string, uint64_t>> at_open_;  // (path, size)

  mutable std::shared_mutex fds_mu_;
  mutable absl::flat_hash_map<uint64_t, int> fds_;  // read descriptors, opened on first use

  std::mutex writers_mu_;
  std::set<PackWriter*> writers_;
  absl::Status close_error_;  // the first failed sync of a closed writer

  struct Request {  // its kind is its lane's
    int fd;
    uint64_t pack, from, to;
  };
  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  std::deque<Request> bg_queue_[kLanes];  // at most kMaxBackground in all
  uint64_t bg_requested_ = 0, bg_done_ = 0;
  bool bg_stop_ = false;
  std::thread bg_[kLanes];  // each started with its lane's first request
  std::atomic<bool> failed_in_background_{false};
  absl::Status background_error_;  // the first failed background sync (guarded by bg_mu_)
};

// Appends records to pack files of its own; not thread-safe (one per thread).
// Its files are synced and closed when it is destroyed; the ImagePacks must
// outlive it. After a failed write every later Append fails the same way.
class PackWriter {
 public:
  ~PackWriter();
  PackWriter(const PackWriter&) = delete;
  PackWriter& operator=(const PackWriter&) = delete;

  // Append one image. ResourceExhausted when the disk (or a file-size limit)
  // is full, Unavailable on other I/O errors; the error names the file.
  absl::StatusOr<PackLocation> Append(const Hash128& hash, absl::string_view bytes);
  absl::Status Sync();
  // The file being written (0 before the first append).
  uint64_t pack() const;

 private:
  friend class ImagePacks;
  explicit PackWriter(ImagePacks* packs) : packs_(packs) {}
  absl::Status CloseFile();  // sync and close the current file

  ImagePacks* const packs_;
  mutable std::mutex mu_;  // Append against SyncWriters
  int fd_ = -1;
  uint64_t pack_ = 0;
  uint64_t size_ = 0;
  uint64_t written_back_ = 0;  // bytes whose writeback was started (in the background)
  uint64_t synced_ = 0;        // bytes whose sync was asked for (in the background) or done
  absl::Status failed_;
};

}  // namespace m3serve::storage

#endif  // M3SERVE_STORAGE_IMAGE_PACKS_H_
