#include "storage/store.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <system_error>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "rocksdb/cache.h"
#include "rocksdb/comparator.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/listener.h"
#include "rocksdb/metadata.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_batch.h"
#include "storage/column_families.h"
#include "storage/image_packs.h"
#include "storage/key_codec.h"
#include "storage/record_codec.h"
#include "storage/rocksdb_status.h"

namespace m3serve::storage {

using internal::FromRocksDbStatus;
using internal::kCatalogCf;
using internal::kColumnFamilyNames;
using internal::kDefaultCf;
using internal::kImageMetaCf;
using internal::kImagesCf;
using internal::kInstancesCf;
using internal::kNumColumnFamilies;
using internal::kProgressCf;

namespace {

constexpr char kSchemaKey[] = "m3serve.schema";
// 2: images may be in pack files (image_packs.h); a store of schema 1 keeps
// every image in the images column family, is read as it is, and becomes 2
// when opened for writing.
constexpr char kSchemaVersion[] = "2";
constexpr char kSchemaVersionWithoutPacks[] = "1";
// Present while images may be left without any instance referring to them.
constexpr char kImageSweepKey[] = "m3serve.image_sweep_pending";
// The image index: a header and one record per group, all under one prefix.
constexpr char kImageIndexPrefix[] = "m3serve.image_index.";
constexpr char kImageIndexEnd[] = "m3serve.image_index/";  // '/' follows '.'
constexpr char kImageIndexHeaderKey[] = "m3serve.image_index.0";
constexpr char kImageIndexGroupPrefix[] = "m3serve.image_index.g.";
constexpr char kIngestStatePrefix[] = "m3serve.ingest.";

rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
absl::string_view ToView(const rocksdb::Slice& s) { return absl::string_view(s.data(), s.size()); }

rocksdb::ColumnFamilyOptions CfOptions(int cf, const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions o;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  t.cache_index_and_filter_blocks = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.format_version = 5;
  switch (cf) {
    case kInstancesCf:
      // Text compresses well; ZSTD on the bottom level where most data settles.
      o.compression = rocksdb::kLZ4Compression;
      o.bottommost_compression = rocksdb::kZSTD;
      o.write_buffer_size = 64ull << 20;
      t.block_size = 16 * 1024;
      break;
    case kImagesCf:
      // Values go to blob files, uncompressed (JPEG/PNG are compressed already);
      // the LSM tree holds only keys and blob references.
      o.enable_blob_files = true;
      o.min_blob_size = 0;
      o.blob_file_size = 256ull << 20;
      o.blob_compression_type = rocksdb::kNoCompression;
      o.enable_blob_garbage_collection = false;
      o.write_buffer_size = 64ull << 20;
      o.compression = rocksdb::kNoCompression;
      break;
    default:
      o.compression = rocksdb::kLZ4Compression;
      o.write_buffer_size = 16ull << 20;
      break;
  }
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

// RocksDB's info log goes to stderr, warnings and worse only, never to a LOG
// file in the store: read-only opens must not write to the store directory (it
// may be a read-only volume shared by server replicas), and RocksDB's own
// file logger aborts the process (an assertion in Debian's build) on its next
// line after a failed write, which a full disk or a file-size limit causes;
// the store's real writes then fail cleanly with the error instead.
class StderrLogger : public rocksdb::Logger {
 public:
  StderrLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char buf[1024];
    vsnprintf(buf, sizeof(buf), format, ap);
    std::fprintf(stderr, "rocksdb: %s\n", buf);
  }
};

// Create an empty store at `path` atomically: it is built whole (every column
// family and the schema record) in a hidden sibling directory and renamed into
// place, so a kill during creation leaves no half-made store behind. `path`
// may be missing or an empty directory. Leftovers of killed creations (their
// process gone) are removed.
absl::Status CreateStore(const std::string& path, const rocksdb::DBOptions& base,
                         const std::vector<rocksdb::ColumnFamilyDescriptor>& descriptors) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path target = fs::absolute(fs::path(path), ec).lexically_normal();
  if (target.has_filename() == false) target = target.parent_path();
  const fs::path parent = target.parent_path();
  fs::create_directories(parent, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create the directory ", parent.string(), ": ", ec.message()));
  }
  if (fs::exists(target, ec) && !fs::is_empty(target, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " exists and is not an m3serve store (no CURRENT file, and not empty)"));
  }
  const std::string prefix = absl::StrCat(".", target.filename().string(), ".creating.");
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, prefix)) continue;
    int pid = 0;
    if (!absl::SimpleAtoi(name.substr(prefix.size()), &pid) || pid <= 0) continue;
    if (pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) fs::remove_all(entry.path(), ec);
  }
  const fs::path tmp = parent / absl::StrCat(prefix, ::getpid());
  fs::remove_all(tmp, ec);
  // Made here, so RocksDB does not log an error about a missing directory.
  fs::create_directories(tmp, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create the directory ", tmp.string(), ": ", ec.message()));
  }
  {
    rocksdb::DBOptions dbo = base;
    dbo.create_if_missing = true;
    // The other column families are made in one call: RocksDB writes and
    // re-reads its OPTIONS file once per call, not once per family.
    std::vector<rocksdb::ColumnFamilyHandle*> cfs;
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(dbo, tmp.string(), {descriptors[kDefaultCf]}, &cfs, &raw);
    std::unique_ptr<rocksdb::DB> db(raw);
    if (s.ok()) {
      std::vector<rocksdb::ColumnFamilyDescriptor> rest(descriptors.begin() + 1, descriptors.end());
      std::vector<rocksdb::ColumnFamilyHandle*> made;
      s = db->CreateColumnFamilies(rest, &made);
      cfs.insert(cfs.end(), made.begin(), made.end());
    }
    if (s.ok()) s = db->Put(rocksdb::WriteOptions(), cfs[kDefaultCf], kSchemaKey, kSchemaVersion);
    if (s.ok()) s = db->Flush(rocksdb::FlushOptions(), cfs);
    for (auto* cf : cfs) db->DestroyColumnFamilyHandle(cf);
    if (s.ok()) s = db->Close();
    db.reset();
    if (!s.ok()) {
      fs::remove_all(tmp, ec);
      return FromRocksDbStatus(s, absl::StrCat("create the store ", path));
    }
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    fs::remove_all(tmp, ec);
    if (fs::exists(target / "CURRENT", ec)) return absl::OkStatus();  // made by another process
    return absl::UnavailableError(
        absl::StrCat("cannot create the store ", path, ": rename: ", std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------
// StoreWriteBatch

// A batch is built before it meets a Store, so it addresses column families
// by their fixed ids (Store::Open checks that the database's ids are the
// schema's) through these stand-in handles, and writes straight into a
// rocksdb::WriteBatch: one copy of each value.
class SchemaCfHandle final : public rocksdb::ColumnFamilyHandle {
 public:
  explicit SchemaCfHandle(int id) : id_(id), name_(kColumnFamilyNames[id]) {}
  const std::string& GetName() const override { return name_; }
  uint32_t GetID() const override { return static_cast<uint32_t>(id_); }
  rocksdb::Status GetDescriptor(rocksdb::ColumnFamilyDescriptor*) override {
    return rocksdb::Status::NotSupported("schema handle");
  }
  const rocksdb::Comparator* GetComparator() const override { return rocksdb::BytewiseComparator(); }

 private:
  int id_;
  std::string name_;
};

rocksdb::ColumnFamilyHandle* SchemaCf(int id) {
  static SchemaCfHandle* handles[kNumColumnFamilies] = {
      new SchemaCfHandle(0), new SchemaCfHandle(1), new SchemaCfHandle(2),
      new SchemaCfHandle(3), new SchemaCfHandle(4), new SchemaCfHandle(5)};
  return handles[id];
}

struct StoreWriteBatch::Rep {
  rocksdb::WriteBatch batch;
  rocksdb::Status status;  // first error of a Put (reported by Store::Write)
  void Put(int cf, absl::string_view key, absl::string_view value) {
    rocksdb::Status s = batch.Put(SchemaCf(cf), ToSlice(key), ToSlice(value));
    if (status.ok() && !s.ok()) status = s;
  }
  void Delete(int cf, absl::string_view key) {
    rocksdb::Status s = batch.Delete(SchemaCf(cf), ToSlice(key));
    if (status.ok() && !s.ok()) status = s;
  }
};

StoreWriteBatch::StoreWriteBatch() : rep_(std::make_unique<Rep>()) {}
StoreWriteBatch::~StoreWriteBatch() = default;
StoreWriteBatch::StoreWriteBatch(StoreWriteBatch&&) noexcept = default;
StoreWriteBatch& StoreWriteBatch::operator=(StoreWriteBatch&&) noexcept = default;

void StoreWriteBatch::PutInstance(const Instance& x) {
  rep_->Put(kInstancesCf, InstanceKey(x.group, x.ordinal), EncodeInstance(x));
}

void StoreWriteBatch::PutImage(const Hash128& hash, const ImageMeta& meta, absl::string_view bytes) {
  rep_->Put(kImagesCf, hash.Raw(), bytes);
  rep_->Put(kImageMetaCf, hash.Raw(), EncodeImageMeta(meta));
}

ImageWriter::ImageWriter(std::unique_ptr<PackWriter> pack) : pack_(std::move(pack)) {}
ImageWriter::~ImageWriter() = default;

absl::Status ImageWriter::Add(const Hash128& hash, const ImageMeta& meta, absl::string_view bytes,
                              StoreWriteBatch* batch) {
  if (meta.size != bytes.size()) {
    return absl::InvalidArgumentError(absl::StrCat("image ", hash.Hex(), ": metadata says ", meta.size,
                                                   " bytes, ", bytes.size(), " given"));
  }
  M3SERVE_ASSIGN_OR_RETURN(PackLocation where, pack_->Append(hash, bytes));
  batch->rep_->Put(kImageMetaCf, hash.Raw(), EncodeImageMeta(meta, &where));
  return absl::OkStatus();
}

void StoreWriteBatch::PutTask(const TaskInfo& task) {
  rep_->Put(kCatalogCf, CatalogTaskKey(task.name), EncodeTaskInfo(task));
}

void StoreWriteBatch::PutPool(absl::string_view task, absl::string_view lang,
                              const std::vector<std::string>& instructions) {
  rep_->Put(kCatalogCf, CatalogPoolKey(task, lang), EncodeStringList(instructions));
}

void StoreWriteBatch::PutCount(const GroupKey& group, uint64_t count) {
  std::string v;
  AppendBigEndian64(&v, count);
  rep_->Put(kCatalogCf, CatalogCountKey(group), v);
}

void StoreWriteBatch::PutImageCount(uint64_t n) {
  std::string v;
  AppendBigEndian64(&v, n);
  rep_->Put(kCatalogCf, CatalogImageCountKey(), v);
}

void StoreWriteBatch::PutProgress(absl::string_view source_key, const FileProgress& p) {
  rep_->Put(kProgressCf, source_key, EncodeFileProgress(p));
}

void StoreWriteBatch::DeleteProgress(absl::string_view source_key) {
  rep_->Delete(kProgressCf, source_key);
}

void StoreWriteBatch::DeleteGroup(const GroupKey& group) {
  rocksdb::Status s = rep_->batch.DeleteRange(SchemaCf(kInstancesCf), ToSlice(GroupPrefix(group)),
                                              ToSlice(GroupUpperBound(group)));
  if (rep_->status.ok() && !s.ok()) rep_->status = s;
  rep_->Delete(kCatalogCf, CatalogCountKey(group));
}

void StoreWriteBatch::MarkImageSweepPending(bool pending) {
  if (pending) {
    rep_->Put(kDefaultCf, kImageSweepKey, "1");
  } else {
    rep_->Delete(kDefaultCf, kImageSweepKey);
  }
}

void StoreWriteBatch::PutIngestState(absl::string_view name, absl::string_view value) {
  rep_->Put(kDefaultCf, absl::StrCat(kIngestStatePrefix, name), value);
}

void StoreWriteBatch::DeleteImageIndex() {
  rocksdb::Status s =
      rep_->batch.DeleteRange(SchemaCf(kDefaultCf), ToSlice(kImageIndexPrefix), ToSlice(kImageIndexEnd));
  if (rep_->status.ok() && !s.ok()) rep_->status = s;
}

void StoreWriteBatch::Reserve(size_t bytes) {
  if (rep_->batch.Count() == 0) rep_->batch = rocksdb::WriteBatch(bytes);
}

int StoreWriteBatch::Count() const { return static_cast<int>(rep_->batch.Count()); }
size_t StoreWriteBatch::ApproximateBytes() const { return rep_->batch.GetDataSize(); }
void StoreWriteBatch::Clear() {
  rep_->batch.Clear();
  rep_->status = rocksdb::Status::OK();
}

// ---------------------------------------------------------------------------
// Store

// Image bytes reach the pack files before the metadata records that point at
// them reach the memtable; a flush persists those records, so it first makes
// the bytes durable (a power loss never leaves a record without its bytes).
class PackSyncListener : public rocksdb::EventListener {
 public:
  explicit PackSyncListener(ImagePacks* packs) : packs_(packs) {}
  void OnFlushBegin(rocksdb::DB*, const rocksdb::FlushJobInfo&) override {
    absl::Status s = packs_->SyncWriters();  // a failure also fails the writer's next Add
    if (!s.ok()) std::fprintf(stderr, "m3serve: %s\n", std::string(s.message()).c_str());
  }

 private:
  ImagePacks* packs_;
};

struct Store::Impl {
  StoreOptions options;
  std::shared_ptr<rocksdb::Cache> cache;
  std::unique_ptr<ImagePacks> packs;  // outlives db (closed first, below)
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;

  ~Impl() {
    if (db) {
      for (auto* h : cfs) {
        if (h != nullptr) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
      }
      cfs.clear();
      db->Close().PermitUncheckedError();
      db.reset();
    }
  }

  rocksdb::ColumnFamilyHandle* cf(int id) const { return cfs[id]; }

  absl::Status Get(int cf_id, absl::string_view key, std::string* value, const char* what) const {
    rocksdb::PinnableSlice v;
    rocksdb::Status s = db->Get(rocksdb::ReadOptions(), cf(cf_id), ToSlice(key), &v);
    if (s.IsNotFound()) return absl::NotFoundError(what);
    if (!s.ok()) return FromRocksDbStatus(s, absl::StrCat("read ", what));
    value->assign(v.data(), v.size());
    return absl::OkStatus();
  }

  // Iterate [lower, upper) of a column family; fn returns false to stop.
  absl::Status Iterate(int cf_id, absl::string_view lower, absl::string_view upper,
                       const std::function<absl::Status(absl::string_view, absl::string_view,
                                                        bool*)>& fn) const {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    rocksdb::Slice upper_slice = ToSlice(upper);
    if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf(cf_id)));
    bool go_on = true;
    for (it->Seek(ToSlice(lower)); go_on && it->Valid(); it->Next()) {
      M3SERVE_RETURN_IF_ERROR(fn(ToView(it->key()), ToView(it->value()), &go_on));
    }
    return FromRocksDbStatus(it->status(), absl::StrCat("scan ", kColumnFamilyNames[cf_id]));
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("store path is empty");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->cache = rocksdb::NewLRUCache(options.block_cache_bytes);

  std::error_code ec;
  const bool exists = std::filesystem::exists(std::filesystem::path(options.path) / "CURRENT", ec);
  if (!exists && (options.read_only || !options.create_if_missing)) {
    return absl::NotFoundError(absl::StrCat("no m3serve store at ", options.path));
  }
  rocksdb::DBOptions dbo;
  dbo.create_if_missing = false;
  dbo.create_missing_column_families = !options.read_only;
  dbo.max_background_jobs = 2;
  // RocksDB opens a store's table files with 16 threads per column family by
  // default: over a hundred thread starts at every open, for stores whose
  // files are few (an ingest creates and opens an empty one).
  dbo.max_file_opening_threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
  dbo.bytes_per_sync = 1 << 20;
  // Column families flush together, so a crash without WAL (bulk_ingest)
  // still leaves them consistent with each other.
  dbo.atomic_flush = true;
  dbo.info_log = std::make_shared<StderrLogger>();
  M3SERVE_ASSIGN_OR_RETURN(impl->packs,
                           ImagePacks::Open(options.path, options.read_only, options.pack_file_bytes));
  dbo.listeners.push_back(std::make_shared<PackSyncListener>(impl->packs.get()));

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (int i = 0; i < kNumColumnFamilies; ++i) {
    descriptors.emplace_back(kColumnFamilyNames[i], CfOptions(i, impl->cache));
  }
  if (!exists) M3SERVE_RETURN_IF_ERROR(CreateStore(options.path, dbo, descriptors));

  {
    std::vector<std::string> names;
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(dbo, options.path, &names);
    if (!s.ok()) return FromRocksDbStatus(s, absl::StrCat("open ", options.path));
    if (options.read_only) {
      for (int i = 0; i < kNumColumnFamilies; ++i) {
        if (std::find(names.begin(), names.end(), kColumnFamilyNames[i]) == names.end()) {
          return absl::FailedPreconditionError(absl::StrCat(
              options.path, " is not an m3serve store (no column family '",
              kColumnFamilyNames[i], "')"));
        }
      }
    }
  }

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      options.read_only
          ? rocksdb::DB::OpenForReadOnly(dbo, options.path, descriptors, &impl->cfs, &raw)
          : rocksdb::DB::Open(dbo, options.path, descriptors, &impl->cfs, &raw);
  impl->db.reset(raw);
  if (!s.ok()) {
    if (s.IsIOError() && absl::StrContains(s.ToString(), "lock")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "store ", options.path, " is open for writing by another process (", s.ToString(), ")"));
    }
    return FromRocksDbStatus(s, absl::StrCat("open ", options.path));
  }

  for (int i = 0; i < kNumColumnFamilies; ++i) {
    if (impl->cfs[i]->GetID() != static_cast<uint32_t>(i)) {
      return absl::FailedPreconditionError(absl::StrCat(
          options.path, ": column family '", kColumnFamilyNames[i], "' has id ",
          impl->cfs[i]->GetID(), ", expected ", i, " (not a store written by m3serve)"));
    }
  }
  std::string schema;
  absl::Status gs = impl->Get(kDefaultCf, kSchemaKey, &schema, "schema version");
  if (absl::IsNotFound(gs)) {
    if (options.read_only) {
      return absl::FailedPreconditionError(
          absl::StrCat(options.path, " is not an m3serve store (no schema record)"));
    }
    rocksdb::WriteOptions wo;
    s = impl->db->Put(wo, impl->cf(kDefaultCf), kSchemaKey, kSchemaVersion);
    if (!s.ok()) return FromRocksDbStatus(s, "write schema version");
  } else if (!gs.ok()) {
    return gs;
  } else if (schema == kSchemaVersionWithoutPacks) {
    if (!options.read_only) {  // this writer may add pack files: older builds must refuse it
      s = impl->db->Put(rocksdb::WriteOptions(), impl->cf(kDefaultCf), kSchemaKey, kSchemaVersion);
      if (!s.ok()) return FromRocksDbStatus(s, "write schema version");
    }
  } else if (schema != kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        options.path, " has store schema version ", schema, "; this build reads versions ",
        kSchemaVersionWithoutPacks, " and ", kSchemaVersion));
  }
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

const std::string& Store::path() const { return impl_->options.path; }

absl::StatusOr<std::unique_ptr<ImageWriter>> Store::NewImageWriter() {
  if (read_only()) return absl::FailedPreconditionError("store is open read-only");
  M3SERVE_ASSIGN_OR_RETURN(std::unique_ptr<PackWriter> pack, impl_->packs->NewWriter());
  return std::unique_ptr<ImageWriter>(new ImageWriter(std::move(pack)));
}
bool Store::read_only() const { return impl_->options.read_only; }

absl::Status Store::Write(StoreWriteBatch* batch) {
  if (read_only()) return absl::FailedPreconditionError("store is open read-only");
  if (!batch->rep_->status.ok()) return FromRocksDbStatus(batch->rep_->status, "build write batch");
  rocksdb::WriteOptions wo;
  wo.disableWAL = impl_->options.bulk_ingest;
  rocksdb::Status s = impl_->db->Write(wo, &batch->rep_->batch);
  if (!s.ok()) return FromRocksDbStatus(s, absl::StrCat("write to ", path()));
  batch->Clear();
  return absl::OkStatus();
}

absl::StatusOr<Instance> Store::GetInstance(const GroupKey& group, uint64_t ordinal) const {
  std::string v;
  absl::Status s = impl_->Get(kInstancesCf, InstanceKey(group, ordinal), &v, "instance");
  if (absl::IsNotFound(s)) {
    return absl::NotFoundError(absl::StrCat("no instance ", FormatInstanceId(group, ordinal)));
  }
  M3SERVE_RETURN_IF_ERROR(s);
  Instance x;
  M3SERVE_RETURN_IF_ERROR(DecodeInstance(v, &x));
  x.group = group;
  x.ordinal = ordinal;
  return x;
}

std::vector<absl::StatusOr<Instance>> Store::MultiGetInstances(
    const std::vector<std::pair<GroupKey, uint64_t>>& keys) const {
  std::vector<std::string> key_bytes;
  key_bytes.reserve(keys.size());
  for (const auto& [g, o] : keys) key_bytes.push_back(InstanceKey(g, o));
  std::vector<rocksdb::Slice> slices;
  slices.reserve(keys.size());
  for (const auto& k : key_bytes) slices.emplace_back(k);
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  impl_->db->MultiGet(rocksdb::ReadOptions(), impl_->cf(kInstancesCf), keys.size(),
                      slices.data(), values.data(), statuses.data());
  std::vector<absl::StatusOr<Instance>> out;
  out.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].IsNotFound()) {
      out.push_back(absl::NotFoundError(
          absl::StrCat("no instance ", FormatInstanceId(keys[i].first, keys[i].second))));
      continue;
    }
    if (!statuses[i].ok()) {
      out.push_back(FromRocksDbStatus(statuses[i], "read instance"));
      continue;
    }
    Instance x;
    absl::Status s = DecodeInstance(ToView(values[i]), &x);
    if (!s.ok()) {
      out.push_back(s);
      continue;
    }
    x.group = keys[i].first;
    x.ordinal = keys[i].second;
    out.push_back(std::move(x));
  }
  return out;
}

absl::Status Store::ScanGroup(const GroupKey& group, uint64_t start, uint64_t limit,
                              const std::function<bool(Instance&&)>& fn) const {
  uint64_t seen = 0;
  return impl_->Iterate(
      kInstancesCf, InstanceKey(group, start), GroupUpperBound(group),
      [&](absl::string_view key, absl::string_view value, bool* go_on) -> absl::Status {
        Instance x;
        M3SERVE_RETURN_IF_ERROR(DecodeInstance(value, &x));
        x.group = group;
        x.ordinal = ReadBigEndian64(key.substr(key.size() - 8));
        *go_on = fn(std::move(x)) && (limit == 0 || ++seen < limit);
        return absl::OkStatus();
      });
}

absl::Status Store::ForEachInstance(const std::function<bool(Instance&&)>& fn) const {
  return impl_->Iterate(
      kInstancesCf, "", "",
      [&](absl::string_view key, absl::string_view value, bool* go_on) -> absl::Status {
        Instance x;
        M3SERVE_RETURN_IF_ERROR(ParseInstanceKey(key, &x.group, &x.ordinal));
        M3SERVE_RETURN_IF_ERROR(DecodeInstance(value, &x));
        *go_on = fn(std::move(x));
        return absl::OkStatus();
      });
}

absl::StatusOr<std::string> Store::GetImage(const Hash128& hash) const {
  std::string v;
  absl::Status s = impl_->Get(kImageMetaCf, hash.Raw(), &v, "image meta");
  if (absl::IsNotFound(s)) return absl::NotFoundError(absl::StrCat("no image ", hash.Hex()));
  M3SERVE_RETURN_IF_ERROR(s);
  ImageMeta meta;
  std::optional<PackLocation> where;
  M3SERVE_RETURN_IF_ERROR(DecodeImageMeta(v, &meta, &where));
  if (where) {
    std::string bytes;
    M3SERVE_RETURN_IF_ERROR(impl_->packs->Read(*where, meta.size, hash, &bytes));
    return bytes;
  }
  s = impl_->Get(kImagesCf, hash.Raw(), &v, "image");
  if (absl::IsNotFound(s)) {
    return absl::DataLossError(absl::StrCat("image ", hash.Hex(), " has metadata but no bytes"));
  }
  M3SERVE_RETURN_IF_ERROR(s);
  if (ContentHash(v) != hash) {
    return absl::DataLossError(absl::StrCat("image ", hash.Hex(), ": the stored bytes do not hash to it (corrupt)"));
  }
  return v;
}

absl::StatusOr<ImageMeta> Store::GetImageMeta(const Hash128& hash) const {
  std::string v;
  absl::Status s = impl_->Get(kImageMetaCf, hash.Raw(), &v, "image meta");
  if (absl::IsNotFound(s)) return absl::NotFoundError(absl::StrCat("no image ", hash.Hex()));
  M3SERVE_RETURN_IF_ERROR(s);
  ImageMeta m;
  M3SERVE_RETURN_IF_ERROR(DecodeImageMeta(v, &m));
  return m;
}

absl::StatusOr<bool> Store::HasImage(const Hash128& hash) const {
  std::string v;
  absl::Status s = impl_->Get(kImageMetaCf, hash.Raw(), &v, "image meta");
  if (absl::IsNotFound(s)) return false;
  M3SERVE_RETURN_IF_ERROR(s);
  return true;
}

absl::Status Store::ForEachImageMeta(
    const std::function<bool(const Hash128&, const ImageMeta&)>& fn) const {
  return impl_->Iterate(kImageMetaCf, "", "",
                        [&](absl::string_view key, absl::string_view value, bool* go_on) {
                          auto hash = Hash128::FromRaw(key);
                          if (!hash) return absl::DataLossError("image meta key is not 16 bytes");
                          ImageMeta m;
                          M3SERVE_RETURN_IF_ERROR(DecodeImageMeta(value, &m));
                          *go_on = fn(*hash, m);
                          return absl::OkStatus();
                        });
}

absl::Status Store::ForEachImage(
    const std::function<bool(const Hash128&, absl::string_view)>& fn) const {
  // The metadata records (with pack locations) and the images column family
  // (bytes of schema 1 and PutImage) merged in hash order; bytes without a
  // metadata record are visited too.
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> meta(impl_->db->NewIterator(ro, impl_->cf(kImageMetaCf)));
  std::unique_ptr<rocksdb::Iterator> inline_bytes(impl_->db->NewIterator(ro, impl_->cf(kImagesCf)));
  meta->SeekToFirst();
  inline_bytes->SeekToFirst();
  std::string bytes;
  while (meta->Valid() || inline_bytes->Valid()) {
    const int order = !meta->Valid()           ? 1
                      : !inline_bytes->Valid() ? -1
                                               : meta->key().compare(inline_bytes->key());
    if (order >= 0) {  // bytes in the column family (with or without metadata)
      auto hash = Hash128::FromRaw(ToView(inline_bytes->key()));
      if (!hash) return absl::DataLossError("image key is not 16 bytes");
      if (!fn(*hash, ToView(inline_bytes->value()))) return absl::OkStatus();
      inline_bytes->Next();
      if (order == 0) meta->Next();
      continue;
    }
    auto hash = Hash128::FromRaw(ToView(meta->key()));
    if (!hash) return absl::DataLossError("image meta key is not 16 bytes");
    ImageMeta m;
    std::optional<PackLocation> where;
    M3SERVE_RETURN_IF_ERROR(DecodeImageMeta(ToView(meta->value()), &m, &where));
    if (where) {  // (metadata without bytes anywhere is not visited)
      // Bytes that do not hash to their key are handed over as they are (the
      // caller, verify, re-hashes them); a missing file or a record that is
      // not the image's is an error.
      M3SERVE_RETURN_IF_ERROR(impl_->packs->Read(*where, m.size, *hash, &bytes, /*check_content=*/false));
      if (!fn(*hash, bytes)) return absl::OkStatus();
    }
    meta->Next();
  }
  M3SERVE_RETURN_IF_ERROR(FromRocksDbStatus(meta->status(), "scan image_meta"));
  return FromRocksDbStatus(inline_bytes->status(), "scan images");
}

absl::Status Store::DeleteImage(const Hash128& hash) {
  if (read_only()) return absl::FailedPreconditionError("store is open read-only");
  rocksdb::WriteBatch wb;
  rocksdb::Status s = wb.Delete(impl_->cf(kImagesCf), ToSlice(hash.Raw()));
  if (s.ok()) s = wb.Delete(impl_->cf(kImageMetaCf), ToSlice(hash.Raw()));
  if (s.ok()) s = impl_->db->Write(rocksdb::WriteOptions(), &wb);
  return FromRocksDbStatus(s, "delete image");
}

absl::StatusOr<std::optional<std::string>> Store::GetIngestState(absl::string_view name) const {
  std::string v;
  absl::Status s = impl_->Get(kDefaultCf, absl::StrCat(kIngestStatePrefix, name), &v, "ingest state");
  if (absl::IsNotFound(s)) return std::optional<std::string>();
  if (!s.ok()) return s;
  return std::optional<std::string>(std::move(v));
}

absl::StatusOr<bool> Store::ImageSweepPending() const {
  std::string v;
  absl::Status s = impl_->Get(kDefaultCf, kImageSweepKey, &v, "image sweep mark");
  if (absl::IsNotFound(s)) return false;
  if (!s.ok()) return s;
  return true;
}

absl::StatusOr<uint64_t> Store::SweepUnreferencedImages() {
  if (read_only()) return absl::FailedPreconditionError("store is open read-only");
  absl::flat_hash_set<Hash128> referenced;
  M3SERVE_RETURN_IF_ERROR(ForEachInstance([&](Instance&& x) {
    referenced.insert(x.images.begin(), x.images.end());
    return true;
  }));
  // Visit every image record as (hash, meta, pack location if any).
  auto for_each_record = [&](const std::function<absl::Status(const Hash128&, absl::string_view key, const ImageMeta&,
                                                              const std::optional<PackLocation>&)>& fn) {
    return impl_->Iterate(kImageMetaCf, "", "",
                          [&](absl::string_view key, absl::string_view value, bool*) -> absl::Status {
                            auto h = Hash128::FromRaw(key);
                            if (!h) return absl::DataLossError("image meta key is not 16 bytes");
                            ImageMeta m;
                            std::optional<PackLocation> where;
                            M3SERVE_RETURN_IF_ERROR(DecodeImageMeta(value, &m, &where));
                            return fn(*h, key, m, where);
                          });
  };
  // 1. Delete the records of unreferenced images; count the live bytes of
  // every pack file.
  StoreWriteBatch batch;
  uint64_t kept = 0, deleted = 0;
  absl::flat_hash_map<uint64_t, uint64_t> live_bytes;
  M3SERVE_RETURN_IF_ERROR(for_each_record([&](const Hash128& h, absl::string_view key, const ImageMeta& m,
                                              const std::optional<PackLocation>& where) {
    if (referenced.contains(h)) {
      if (where) live_bytes[where->pack] += ImagePacks::kRecordHeaderBytes + m.size;
      ++kept;
    } else {
      batch.rep_->Delete(kImagesCf, key);
      batch.rep_->Delete(kImageMetaCf, key);
      ++deleted;
    }
    return absl::OkStatus();
  }));
  M3SERVE_RETURN_IF_ERROR(Write(&batch));
  // 2. Compact: the live images of a pack file that is mostly dead bytes
  // (images deleted here or earlier, bytes of killed runs) move to a new
  // file, one image in memory at a time, so that file can go too.
  absl::flat_hash_set<uint64_t> compact;
  for (const auto& [pack, bytes] : live_bytes) {
    absl::StatusOr<uint64_t> size = impl_->packs->FileBytes(pack);
    if (size.ok() && bytes < *size / 2) compact.insert(pack);
  }
  if (!compact.empty()) {
    M3SERVE_ASSIGN_OR_RETURN(std::unique_ptr<ImageWriter> writer, NewImageWriter());
    std::string bytes;
    M3SERVE_RETURN_IF_ERROR(for_each_record([&](const Hash128& h, absl::string_view, const ImageMeta& m,
                                                const std::optional<PackLocation>& where) -> absl::Status {
      if (!where || !compact.contains(where->pack) || !referenced.contains(h)) return absl::OkStatus();
      M3SERVE_RETURN_IF_ERROR(impl_->packs->Read(*where, m.size, h, &bytes));
      M3SERVE_RETURN_IF_ERROR(writer->Add(h, m, bytes, &batch));
      if (batch.ApproximateBytes() >= (1u << 20)) return Write(&batch);
      return absl::OkStatus();
    }));
    M3SERVE_RETURN_IF_ERROR(Write(&batch));
  }
  // 3. The deletions and moves are on disk before any file goes (a kill
  // cannot bring back a record of an image whose file is gone); then every
  // file no record points into is deleted.
  M3SERVE_RETURN_IF_ERROR(Flush());
  absl::flat_hash_set<uint64_t> live_packs;
  M3SERVE_RETURN_IF_ERROR(for_each_record([&](const Hash128&, absl::string_view, const ImageMeta&,
                                              const std::optional<PackLocation>& where) {
    if (where) live_packs.insert(where->pack);
    return absl::OkStatus();
  }));
  M3SERVE_RETURN_IF_ERROR(impl_->packs->RemoveUnused(live_packs).status());
  // 4. Only now the mark goes: a run killed before this sweeps again.
  batch.PutImageCount(kept);
  batch.MarkImageSweepPending(false);
  M3SERVE_RETURN_IF_ERROR(Write(&batch));
  return deleted;
}

absl::Status Store::WriteImageIndex(const ImageIndex& index) {
  StoreWriteBatch batch;
  batch.DeleteImageIndex();
  batch.rep_->Put(kDefaultCf, kImageIndexHeaderKey, EncodeImageIndexHeader(index));
  for (const auto& [group, refs] : index.groups) {
    batch.rep_->Put(kDefaultCf, absl::StrCat(kImageIndexGroupPrefix, GroupPrefix(group)), EncodeImageRefs(refs));
  }
  return Write(&batch);
}

absl::StatusOr<std::optional<std::pair<ImageIndex, uint64_t>>> Store::ReadImageIndexHeader() const {
  std::string header;
  absl::Status s = impl_->Get(kDefaultCf, kImageIndexHeaderKey, &header, "image index");
  if (absl::IsNotFound(s)) return std::nullopt;
  M3SERVE_RETURN_IF_ERROR(s);
  std::pair<ImageIndex, uint64_t> out;
  M3SERVE_RETURN_IF_ERROR(DecodeImageIndexHeader(header, &out.first, &out.second));
  return out;
}

absl::StatusOr<std::optional<Hash128>> Store::ImageIndexBasis() const {
  M3SERVE_ASSIGN_OR_RETURN(auto header, ReadImageIndexHeader());
  if (!header) return std::optional<Hash128>();
  return std::optional<Hash128>(header->first.basis);
}

absl::StatusOr<std::optional<ImageIndex>> Store::ReadImageIndex() const {
  M3SERVE_ASSIGN_OR_RETURN(auto header, ReadImageIndexHeader());
  if (!header) return std::optional<ImageIndex>();
  ImageIndex index = std::move(header->first);
  const uint64_t groups = header->second;
  const size_t prefix = std::strlen(kImageIndexGroupPrefix);
  M3SERVE_RETURN_IF_ERROR(impl_->Iterate(
      kDefaultCf, kImageIndexGroupPrefix, kImageIndexEnd,
      [&](absl::string_view key, absl::string_view value, bool*) -> absl::Status {
        GroupKey g;
        uint64_t unused;
        std::string k(key.substr(prefix));
        k.append(8, '\0');
        M3SERVE_RETURN_IF_ERROR(ParseInstanceKey(k, &g, &unused));
        return DecodeImageRefs(value, index.images, &index.groups[std::move(g)]);
      }));
  if (index.groups.size() != groups) {
    return absl::DataLossError(absl::StrCat("image index: ", index.groups.size(), " group records where its header says ",
                                            groups));
  }
  return std::optional<ImageIndex>(std::move(index));
}

absl::StatusOr<Catalog> Store::ReadCatalog() const {
  Catalog c;
  StreamingHash fp;
  M3SERVE_RETURN_IF_ERROR(impl_->Iterate(
      kCatalogCf, "", "",
      [&](absl::string_view key, absl::string_view value, bool*) -> absl::Status {
        fp.AddRecord(key);
        fp.AddRecord(value);
        if (key.size() < 1) return absl::DataLossError("empty catalog key");
        const char type = key[0];
        absl::string_view rest = key.size() > 2 ? key.substr(2) : absl::string_view();
        if (type == 't') {
          TaskInfo t;
          M3SERVE_RETURN_IF_ERROR(DecodeTaskInfo(value, &t));
          c.tasks[t.name] = std::move(t);
        } else if (type == 'c') {
          GroupKey g;
          uint64_t unused;
          std::string k(rest);
          k.append(8, '\0');
          M3SERVE_RETURN_IF_ERROR(ParseInstanceKey(k, &g, &unused));
          if (value.size() != 8) return absl::DataLossError("catalog count is not 8 bytes");
          c.counts[g] = ReadBigEndian64(value);
        } else if (type == 'p') {
          size_t sep = rest.find('\0');
          if (sep == absl::string_view::npos) return absl::DataLossError("bad pool key");
          std::vector<std::string> pool;
          M3SERVE_RETURN_IF_ERROR(DecodeStringList(value, &pool));
          c.pools[{std::string(rest.substr(0, sep)), std::string(rest.substr(sep + 1))}] =
              std::move(pool);
        } else if (type == 'i') {
          if (value.size() != 8) return absl::DataLossError("catalog image count is not 8 bytes");
          c.unique_images = ReadBigEndian64(value);
        }
        return absl::OkStatus();
      }));
  c.fingerprint = fp.Finish();
  return c;
}

absl::StatusOr<std::optional<FileProgress>> Store::GetProgress(absl::string_view source_key) const {
  std::string v;
  absl::Status s = impl_->Get(kProgressCf, source_key, &v, "progress");
  if (absl::IsNotFound(s)) return std::optional<FileProgress>();
  M3SERVE_RETURN_IF_ERROR(s);
  FileProgress p;
  M3SERVE_RETURN_IF_ERROR(DecodeFileProgress(v, &p));
  return std::optional<FileProgress>(std::move(p));
}

absl::Status Store::ForEachProgress(
    const std::function<bool(absl::string_view, const FileProgress&)>& fn) const {
  return impl_->Iterate(kProgressCf, "", "",
                        [&](absl::string_view key, absl::string_view value, bool* go_on) {
                          FileProgress p;
                          M3SERVE_RETURN_IF_ERROR(DecodeFileProgress(value, &p));
                          *go_on = fn(key, p);
                          return absl::OkStatus();
                        });
}

absl::Status Store::Flush() {
  if (read_only()) return absl::OkStatus();
  M3SERVE_RETURN_IF_ERROR(impl_->packs->SyncWriters());
  rocksdb::FlushOptions fo;
  return FromRocksDbStatus(impl_->db->Flush(fo, impl_->cfs), "flush");
}

absl::Status Store::CheckFiles() const {
  auto join = [](const std::string& dir, const std::string& name) {
    return name.empty() || name.front() == '/' ? dir + name : dir + "/" + name;
  };
  auto check = [](const std::string& path, uint64_t size) -> absl::Status {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      return absl::DataLossError(absl::StrCat("store file ", path, " is gone: ", std::strerror(errno)));
    }
    if (static_cast<uint64_t>(st.st_size) != size) {
      return absl::DataLossError(
          absl::StrCat("store file ", path, " has ", st.st_size, " bytes, the store expects ", size));
    }
    return absl::OkStatus();
  };
  for (rocksdb::ColumnFamilyHandle* h : impl_->cfs) {
    rocksdb::ColumnFamilyMetaData md;
    impl_->db->GetColumnFamilyMetaData(h, &md);
    for (const auto& level : md.levels) {
      for (const auto& f : level.files) {
        M3SERVE_RETURN_IF_ERROR(check(join(f.directory, f.relative_filename), f.size));
      }
    }
    for (const auto& b : md.blob_files) {
      M3SERVE_RETURN_IF_ERROR(check(join(b.blob_file_path, b.blob_file_name), b.blob_file_size));
    }
  }
  return impl_->packs->CheckFiles();
}

absl::Status Store::Checkpoint(const std::string& dir) const {
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(impl_->db.get(), &raw);
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  if (s.ok()) s = cp->CreateCheckpoint(dir);
  M3SERVE_RETURN_IF_ERROR(FromRocksDbStatus(s, absl::StrCat("checkpoint to ", dir)));
  return impl_->packs->LinkTo(dir);
}

absl::StatusOr<uint64_t> Store::DiskBytes() const {
  std::error_code ec;
  uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(path(), ec)) {
    if (e.is_regular_file(ec)) total += e.file_size(ec);
  }
  if (ec) return absl::UnavailableError(absl::StrCat("list ", path(), ": ", ec.message()));
  return total;
}

}  // namespace m3serve::storage
