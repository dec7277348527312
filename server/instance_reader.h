// File: server/instance_reader.h
//
// What serving reads from a store: instances by key and images by hash. The
// production reader is the RocksDB store; tests of the serving core use the
// in-memory reader, so batches, budgets and fairness are exercised in-process
// without a store on disk or a gRPC server.
#ifndef M3SERVE_SERVER_INSTANCE_READER_H_
#define M3SERVE_SERVER_INSTANCE_READER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/hash.h"
#include "storage/store.h"
#include "storage/types.h"

namespace m3serve::server {

using InstanceKey = std::pair<storage::GroupKey, uint64_t>;

class InstanceReader {
 public:
  virtual ~InstanceReader() = default;
  // Instances in request order, each with its own status (NotFound when absent).
  virtual std::vector<absl::StatusOr<storage::Instance>> MultiGetInstances(
      const std::vector<InstanceKey>& keys) const = 0;
  // NotFound when the image is absent. GetImage returns only bytes that hash
  // to `hash` (DataLoss otherwise: storage::Store::GetImage checks them).
  virtual absl::StatusOr<storage::ImageMeta> GetImageMeta(const Hash128& hash) const = 0;
  virtual absl::StatusOr<std::string> GetImage(const Hash128& hash) const = 0;
  // Visit every instance (in key order) until `fn` returns false.
  virtual absl::Status ForEachInstance(const std::function<bool(storage::Instance&&)>& fn) const = 0;
};

// Reads a store (which must outlive the reader).
class StoreReader final : public InstanceReader {
 public:
  explicit StoreReader(const storage::Store* store) : store_(store) {}
  std::vector<absl::StatusOr<storage::Instance>> MultiGetInstances(
      const std::vector<InstanceKey>& keys) const override {
    return store_->MultiGetInstances(keys);
  }
  absl::StatusOr<storage::ImageMeta> GetImageMeta(const Hash128& hash) const override {
    return store_->GetImageMeta(hash);
  }
  absl::StatusOr<std::string> GetImage(const Hash128& hash) const override { return store_->GetImage(hash); }
  absl::Status ForEachInstance(const std::function<bool(storage::Instance&&)>& fn) const override {
    return store_->ForEachInstance(fn);
  }

 private:
  const storage::Store* store_;
};

// Instances and images held in memory (tests). Thread-safe; counts reads.
class MemoryReader final : public InstanceReader {
 public:
  // Add (or replace) an instance under its own group and ordinal.
  void Add(storage::Instance x);
  // Add an image; its hash is the content hash, its metadata from the header
  // (format unknown and no size when the bytes are not an image).
  Hash128 AddImage(std::string bytes);
  // Remove an instance (reads of it fail with NotFound, like a damaged store).
  void Remove(const InstanceKey& key);
  // Instances read so far.
  uint64_t instance_reads() const;

  std::vector<absl::StatusOr<storage::Instance>> MultiGetInstances(
      const std::vector<InstanceKey>& keys) const override;
  absl::StatusOr<storage::ImageMeta> GetImageMeta(const Hash128& hash) const override;
  absl::StatusOr<std::string> GetImage(const Hash128& hash) const override;
  absl::Status ForEachInstance(const std::function<bool(storage::Instance&&)>& fn) const override;

 private:
  mutable absl::Mutex mu_;
  std::map<InstanceKey, storage::Instance> instances_ ABSL_GUARDED_BY(mu_);
  std::map<Hash128, std::pair<storage::ImageMeta, std::string>> images_ ABSL_GUARDED_BY(mu_);
  mutable uint64_t instance_reads_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_INSTANCE_READER_H_
