// File: storage/rocksdb_status.h (internal to storage/)
//
// The one conversion from rocksdb::Status to absl::Status.
#ifndef M3SERVE_STORAGE_ROCKSDB_STATUS_H_
#define M3SERVE_STORAGE_ROCKSDB_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/status.h"

namespace m3serve::storage::internal {

// Map a RocksDB status to the most specific canonical code, prefixing the
// message with `context` (e.g. "open /data/store").
//   NotFound -> kNotFound, Corruption -> kDataLoss, NoSpace -> kResourceExhausted,
//   InvalidArgument -> kInvalidArgument, NotSupported -> kUnimplemented,
//   Busy/TryAgain/TimedOut/IOError -> kUnavailable, anything else -> kInternal.
absl::Status FromRocksDbStatus(const rocksdb::Status& s, absl::string_view context);

}  // namespace m3serve::storage::internal

#endif  // M3SERVE_STORAGE_ROCKSDB_STATUS_H_
