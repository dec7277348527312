// File: storage/key_codec.h
//
// The only place store keys are built and parsed.
//
// Instance keys are `task \0 split \0 lang \0` followed by the ordinal as 8
// big-endian bytes. Names never contain \0, so byte order sorts by task, then
// split, then language, then ordinal, and one group is one contiguous range
// whose exclusive upper bound is the prefix with its last \0 replaced by \1.
#ifndef M3SERVE_STORAGE_KEY_CODEC_H_
#define M3SERVE_STORAGE_KEY_CODEC_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/types.h"

namespace m3serve::storage {

// Check that `name` can be a task, split or language name: 1..128 bytes of
// [A-Za-z0-9._+-]. `what` names the field in the InvalidArgument message.
absl::Status ValidateName(absl::string_view name, absl::string_view what);
absl::Status ValidateGroup(const GroupKey& group);

// The common prefix of every instance key of `group`.
std::string GroupPrefix(const GroupKey& group);
// Exclusive upper bound of the group's key range.
std::string GroupUpperBound(const GroupKey& group);
std::string InstanceKey(const GroupKey& group, uint64_t ordinal);

// Parse an instance key. InvalidArgument (naming the problem) on bad bytes.
absl::Status ParseInstanceKey(absl::string_view key, GroupKey* group, uint64_t* ordinal);

// "task/split/lang/ordinal" <-> (group, ordinal). ParseInstanceId returns
// InvalidArgument naming the malformed part.
std::string FormatInstanceId(const GroupKey& group, uint64_t ordinal);
absl::Status ParseInstanceId(absl::string_view id, GroupKey* group, uint64_t* ordinal);

// Catalog keys.
std::string CatalogTaskKey(absl::string_view task);
std::string CatalogCountKey(const GroupKey& group);
std::string CatalogPoolKey(absl::string_view task, absl::string_view lang);
std::string CatalogImageCountKey();

void AppendBigEndian64(std::string* out, uint64_t v);
uint64_t ReadBigEndian64(absl::string_view bytes);  // requires 8 bytes

}  // namespace m3serve::storage

#endif  // M3SERVE_STORAGE_KEY_CODEC_H_
