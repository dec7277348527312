// File: storage/store.h
//
// The m3serve store: instances indexed by (task, split, language, ordinal),
// images kept once each by content hash, a catalog and ingest progress, in one
// RocksDB database. Callers see only m3serve types; RocksDB stays inside.
//
// Thread-safety: a Store is safe for concurrent reads from many threads and
// concurrent Write() calls. A StoreWriteBatch is not thread-safe.
#ifndef M3SERVE_STORAGE_STORE_H_
#define M3SERVE_STORAGE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/types.h"

namespace m3serve::storage {

struct StoreOptions {
  // Store directory. Required.
  std::string path;
  // Open without write access. Several processes may open one store read-only
  // at the same time (e.g. server replicas on a shared volume). Default: false.
  bool read_only = false;
  // Create an empty store when `path` holds none (ignored when read_only).
  // Default: true.
  bool create_if_missing = true;
  // Shared block cache for index, filter and data blocks. Default: 256 MiB.
  uint64_t block_cache_bytes = 256ull << 20;
  // Bulk loading: writes skip the write-ahead log. Column families are
  // flushed atomically together, so a crash or kill loses the writes since the
  // last flush but leaves every column family consistent with the others
  // (ingest progress included: an interrupted ingest resumes from what is on
  // disk). Call Flush() before closing. Default: false.
  bool bulk_ingest = false;
  // Image pack files (ImageWriter) are closed and a new one begun past this
  // size. Default: 1 GiB.
  uint64_t pack_file_bytes = 1ull << 30;
};

// A set of writes applied atomically by Store::Write: after a crash or
// SIGKILL either all of them are in the store, or none.
class StoreWriteBatch {
 public:
  StoreWriteBatch();
  ~StoreWriteBatch();
  StoreWriteBatch(StoreWriteBatch&&) noexcept;
  StoreWriteBatch& operator=(StoreWriteBatch&&) noexcept;

  void PutInstance(const Instance& instance);
  // Store the encoded bytes under `hash` together with their metadata, in the
  // batch itself (small writes, tests). Bulk writers use ImageWriter.
  void PutImage(const Hash128& hash, const ImageMeta& meta, absl::string_view bytes);
  void PutTask(const TaskInfo& task);
  void PutPool(absl::string_view task, absl::string_view lang,
               const std::vector<std::string>& instructions);
  void PutCount(const GroupKey& group, uint64_t count);
  void PutImageCount(uint64_t unique_images);
  void PutProgress(absl::string_view source_key, const FileProgress& progress);
  void DeleteProgress(absl::string_view source_key);
  // Remove every instance of `group` and its catalog count, so the group can
  // be ingested again from ordinal 0. Images the group alone referenced stay
  // until SweepUnreferencedImages; MarkImageSweepPending(true) in the same
  // batch makes sure a sweep follows even after a kill.
  void DeleteGroup(const GroupKey& group);
  void MarkImageSweepPending(bool pending);
  // Small named values the ingest keeps with the data it commits (e.g. the
  // committed length of a rejects file). Not part of the content digest.
  void PutIngestState(absl::string_view name, absl::string_view value);
  // Remove the image index (Store::ReadImageIndex is then nullopt): written
  // before a run changes instances, so a run that stops half-way never leaves
  // an index of other data behind.
  void DeleteImageIndex();

  // Pre-allocate room for `bytes` of operations (avoids regrowing the buffer
  // of a large batch). Only effective on an empty batch.
  void Reserve(size_t bytes);

  // Number of operations and approximate serialized size.
  int Count() const;
  size_t ApproximateBytes() const;
  void Clear();

 private:
  friend class Store;
  friend class ImageWriter;
  struct Rep;
  std::unique_ptr<Rep> rep_;
};

class ImagePacks;
class PackWriter;

// Writes images for write batches without copying their bytes into them: the
// bytes go straight to the store's image pack files (one file of its own at a
// time), the metadata record, naming where the bytes are, into the batch. An
// image is in the store once that batch is written; bytes of a batch never
// written are garbage a sweep removes (SweepUnreferencedImages). Not
// thread-safe: one writer per thread. The Store must outlive it.
class ImageWriter {
 public:
  ~ImageWriter();
  ImageWriter(const ImageWriter&) = delete;
  ImageWriter& operator=(const ImageWriter&) = delete;

  // InvalidArgument when meta.size is not bytes.size(); ResourceExhausted when
  // the disk is full; Unavailable on other write errors. After an error every
  // later Add fails.
  absl::Status Add(const Hash128& hash, const ImageMeta& meta, absl::string_view bytes, StoreWriteBatch* batch);

 private:
  friend class Store;
  explicit ImageWriter(std::unique_ptr<PackWriter> pack);
  std::unique_ptr<PackWriter> pack_;
};

class Store {
 public:
  // Open (or create) the store at options.path.
  // NotFound: no store there (read-only, or create_if_missing false).
  // FailedPrecondition: the directory is not an m3serve store, or it is locked
  // by another writer. DataLoss: corrupt files. Unavailable: I/O errors.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const;
  bool read_only() const;

  // A writer of image bytes for this store's batches. FailedPrecondition when
  // read-only.
  absl::StatusOr<std::unique_ptr<ImageWriter>> NewImageWriter();

  // Apply `batch` atomically (WAL on unless bulk_ingest; no fsync).
  // FailedPrecondition when read-only; ResourceExhausted when the disk is full.
  absl::Status Write(StoreWriteBatch* batch);

  // One instance. NotFound when the group or ordinal does not exist.
  absl::StatusOr<Instance> GetInstance(const GroupKey& group, uint64_t ordinal) const;

  // Several instances in one call (in request order); each slot has its own
  // status (NotFound for missing ones).
  std::vector<absl::StatusOr<Instance>> MultiGetInstances(
      const std::vector<std::pair<GroupKey, uint64_t>>& keys) const;

  // Visit the instances of `group` with ordinal >= start, in ordinal order, at
  // most `limit` of them (0 = no limit), until `fn` returns false.
  absl::Status ScanGroup(const GroupKey& group, uint64_t start, uint64_t limit,
                         const std::function<bool(Instance&&)>& fn) const;

  // Visit every instance in key order until `fn` returns false.
  absl::Status ForEachInstance(const std::function<bool(Instance&&)>& fn) const;

  // The encoded bytes of an image, checked against their hash: NotFound when
  // absent, DataLoss naming the damage when the bytes stored are not the
  // image's (never wrong bytes). Callers need not re-hash.
  absl::StatusOr<std::string> GetImage(const Hash128& hash) const;
  // Image metadata. NotFound when absent.
  absl::StatusOr<ImageMeta> GetImageMeta(const Hash128& hash) const;
  // True when the image's metadata record exists (never reads the bytes).
  absl::StatusOr<bool> HasImage(const Hash128& hash) const;
  // Visit (hash, metadata) of every image in hash order.
  absl::Status ForEachImageMeta(const std::function<bool(const Hash128&, const ImageMeta&)>& fn) const;
  // Visit (hash, bytes) of every stored image in hash order, bytes without a
  // metadata record included. Reads all bytes; bytes that do not hash to
  // their key are handed over as they are. DataLoss when a pack file is
  // missing or short, or holds another image where a record points.
  absl::Status ForEachImage(const std::function<bool(const Hash128&, absl::string_view)>& fn) const;

  // Remove one image's bytes and metadata (operator repair; tests).
  absl::Status DeleteImage(const Hash128& hash);
  // A value written by PutIngestState; nullopt when never written.
  absl::StatusOr<std::optional<std::string>> GetIngestState(absl::string_view name) const;
  // True after a batch with MarkImageSweepPending(true) until a sweep ran.
  absl::StatusOr<bool> ImageSweepPending() const;
  // Delete every image no instance references; move the images of pack files
  // that are mostly unreferenced bytes to a new file; flush, delete the pack
  // files no image is in any more; then set the unique image count to what
  // remains and clear the pending mark (a kill before that sweeps again).
  // Reads every instance record and image metadata record, and the bytes of
  // moved images only. Returns the number of images deleted. Must not run
  // concurrently with other writers (of instances or images).
  absl::StatusOr<uint64_t> SweepUnreferencedImages();

  // Replace the image index with `index`, in one atomic write.
  absl::Status WriteImageIndex(const ImageIndex& index);
  // The image index; nullopt when the store has none (never built, or removed
  // by a run that changed instances). DataLoss when its records are corrupt
  // or incomplete. Whether it describes the current data is the caller's
  // check (ImageIndex::basis against Catalog::fingerprint).
  absl::StatusOr<std::optional<ImageIndex>> ReadImageIndex() const;
  // The basis of the image index (its header only); nullopt when none.
  absl::StatusOr<std::optional<Hash128>> ImageIndexBasis() const;

  // The whole catalog: tasks, counts, pools, unique image count, fingerprint.
  absl::StatusOr<Catalog> ReadCatalog() const;

  // Ingest progress of one source; nullopt when the source was never started.
  absl::StatusOr<std::optional<FileProgress>> GetProgress(absl::string_view source_key) const;
  // Every progress record (source key, progress), in key order.
  absl::Status ForEachProgress(
      const std::function<bool(absl::string_view, const FileProgress&)>& fn) const;

  // Flush memtables to SST files (image pack files are synced first).
  absl::Status Flush();
  // Write a consistent snapshot of the store to `dir` (must not exist), using
  // hard links where possible (image pack files included). The copy opens as
  // a normal store. No image writer may be writing.
  absl::Status Checkpoint(const std::string& dir) const;
  // Total size of the store's files on disk, in bytes.
  absl::StatusOr<uint64_t> DiskBytes() const;
  // Every data file the open store reads (SST and blob files of every column
  // family, and the image pack files there were at open) is still on disk
  // with its size: DataLoss naming the first one
  // that is gone or changed. A few stat calls per file; a server calls it
  // periodically to notice a store deleted or replaced under it.
  absl::Status CheckFiles() const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  // The image index's header: the index without groups, and its group count.
  absl::StatusOr<std::optional<std::pair<ImageIndex, uint64_t>>> ReadImageIndexHeader() const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace m3serve::storage

#endif  // M3SERVE_STORAGE_STORE_H_
