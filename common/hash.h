// File: common/hash.h
//
// Content hashes. Images are addressed by the 128-bit XXH3 hash of their
// encoded bytes (after base64 decoding). XXH3-128 is not cryptographic: the
// store is built by its operator from a trusted dataset, and `verify`
// re-hashes every image, so collisions by accident (~2^-64 at 2^32 images)
// are the only concern it must answer.
#ifndef M3SERVE_COMMON_HASH_H_
#define M3SERVE_COMMON_HASH_H_

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace m3serve {

// A 128-bit hash, held as 16 big-endian bytes (so byte order = numeric order).
struct Hash128 {
  std::array<uint8_t, 16> bytes{};

  // 32 lowercase hex digits.
  std::string Hex() const;
  // The 16 raw bytes, as used in store keys.
  absl::string_view Raw() const {
    return absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  // Parse 32 hex digits; nullopt on anything else.
  static std::optional<Hash128> FromHex(absl::string_view hex);
  // Parse 16 raw bytes; nullopt when the size is wrong.
  static std::optional<Hash128> FromRaw(absl::string_view raw);

  auto operator<=>(const Hash128&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const Hash128& x) {
    return H::combine(std::move(h), x.Raw());
  }
};

// XXH3-128 of `data`.
Hash128 ContentHash(absl::string_view data);

// Incremental XXH3-128 for digests over many records.
class StreamingHash {
 public:
  StreamingHash();
  ~StreamingHash();
  StreamingHash(const StreamingHash&) = delete;
  StreamingHash& operator=(const StreamingHash&) = delete;
  // Add `data` preceded by its length, so record boundaries are part of the hash.
  void AddRecord(absl::string_view data);
  Hash128 Finish() const;

 private:
  void* state_;
};

// 64-bit XXH3 with a seed; used for deterministic pseudo-random choices.
// The content hash of a byte stream fed in pieces of any size, which can be
// saved at a block boundary and continued later (a resumed ingest re-reads
// less than one block). Blocks of kBlockBytes are hashed separately and
// chained; the result depends only on the bytes, never on how they were fed.
class ChainedContentHash {
 public:
  static constexpr uint64_t kBlockBytes = 1 << 20;

  ChainedContentHash();
  ~ChainedContentHash();
  ChainedContentHash(const ChainedContentHash&) = delete;
  ChainedContentHash& operator=(const ChainedContentHash&) = delete;

  // Continue from a state saved by chain() / chain_offset().
  void Restore(const Hash128& chain, uint64_t chain_offset);
  void Update(absl::string_view data);
  // Bytes hashed so far.
  uint64_t offset() const { return offset_; }
  // The state at the last block boundary, and that boundary.
  const Hash128& chain() const { return chain_; }
  uint64_t chain_offset() const { return offset_ - (offset_ % kBlockBytes); }
  // The hash of every byte so far (the stream may continue).
  Hash128 Digest() const;

 private:
  void EndBlock();
  void* block_;  // XXH3 state of the current block
  Hash128 chain_;
  uint64_t offset_ = 0;
};

uint64_t Hash64(absl::string_view data, uint64_t seed = 0);

}  // namespace m3serve

#endif  // M3SERVE_COMMON_HASH_H_
