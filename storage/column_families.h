// File: storage/column_families.h
//
// The RocksDB schema of an m3serve store, written down in one place.
//
//   instances   key: task \0 split \0 lang \0 ordinal(8, big-endian)   (key_codec.h)
//               value: instance record (record_codec.h)
//   images      key: 16-byte content hash; value: the original encoded bytes.
//               Integrated blob files, no compression (images are compressed).
//   image_meta  key: 16-byte content hash; value: format, width, height, size.
//               Small, so existence checks never read a blob.
//   catalog     key: record type byte + names (see store.cc); tasks, counts,
//               instruction pools, unique image count.
//   progress    key: source identity; value: FileProgress, written in the same
//               WriteBatch as the rows it covers (exactly-once resume).
#ifndef M3SERVE_STORAGE_COLUMN_FAMILIES_H_
#define M3SERVE_STORAGE_COLUMN_FAMILIES_H_

namespace m3serve::storage::internal {

enum ColumnFamilyId : int {
  kDefaultCf = 0,
  kInstancesCf = 1,
  kImagesCf = 2,
  kImageMetaCf = 3,
  kCatalogCf = 4,
  kProgressCf = 5,
  kNumColumnFamilies = 6,
};

inline constexpr const char* kColumnFamilyNames[kNumColumnFamilies] = {
    "default", "instances", "images", "image_meta", "catalog", "progress"};

}  // namespace m3serve::storage::internal

#endif  // M3SERVE_STORAGE_COLUMN_FAMILIES_H_
