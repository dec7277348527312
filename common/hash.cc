#include "common/hash.h"

#include <xxhash.h>

#include <algorithm>

namespace m3serve {
namespace {

Hash128 FromXxh(XXH128_hash_t h) {
  Hash128 out;
  for (int i = 0; i < 8; ++i) {
    out.bytes[i] = static_cast<uint8_t>(h.high64 >> (56 - 8 * i));
    out.bytes[8 + i] = static_cast<uint8_t>(h.low64 >> (56 - 8 * i));
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string Hash128::Hex() const {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

std::optional<Hash128> Hash128::FromHex(absl::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  Hash128 out;
  for (int i = 0; i < 16; ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.bytes[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return out;
}

std::optional<Hash128> Hash128::FromRaw(absl::string_view raw) {
  if (raw.size() != 16) return std::nullopt;
  Hash128 out;
  for (int i = 0; i < 16; ++i) out.bytes[i] = static_cast<uint8_t>(raw[i]);
  return out;
}

Hash128 ContentHash(absl::string_view data) {
  return FromXxh(XXH3_128bits(data.data(), data.size()));
}

StreamingHash::StreamingHash() : state_(XXH3_createState()) {
  XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_));
}

StreamingHash::~StreamingHash() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void StreamingHash::AddRecord(absl::string_view data) {
  auto* st = static_cast<XXH3_state_t*>(state_);
  uint64_t len = data.size();
  XXH3_128bits_update(st, &len, sizeof(len));
  XXH3_128bits_update(st, data.data(), data.size());
}

Hash128 StreamingHash::Finish() const {
  return FromXxh(XXH3_128bits_digest(static_cast<XXH3_state_t*>(state_)));
}

ChainedContentHash::ChainedContentHash() : block_(XXH3_createState()) {
  XXH3_128bits_reset(static_cast<XXH3_state_t*>(block_));
}

ChainedContentHash::~ChainedContentHash() { XXH3_freeState(static_cast<XXH3_state_t*>(block_)); }

void ChainedContentHash::Restore(const Hash128& chain, uint64_t chain_offset) {
  chain_ = chain;
  offset_ = chain_offset - chain_offset % kBlockBytes;
  XXH3_128bits_reset(static_cast<XXH3_state_t*>(block_));
}

void ChainedContentHash::EndBlock() {
  auto* st = static_cast<XXH3_state_t*>(block_);
  Hash128 block = FromXxh(XXH3_128bits_digest(st));
  std::string link = std::string(chain_.Raw()) + std::string(block.Raw());
  chain_ = ContentHash(link);
  XXH3_128bits_reset(st);
}

void ChainedContentHash::Update(absl::string_view data) {
  auto* st = static_cast<XXH3_state_t*>(block_);
  while (!data.empty()) {
    const uint64_t room = kBlockBytes - offset_ % kBlockBytes;
    const size_t take = static_cast<size_t>(std::min<uint64_t>(room, data.size()));
    XXH3_128bits_update(st, data.data(), take);
    offset_ += take;
    data.remove_prefix(take);
    if (offset_ % kBlockBytes == 0) EndBlock();
  }
}

Hash128 ChainedContentHash::Digest() const {
  Hash128 block = FromXxh(XXH3_128bits_digest(static_cast<XXH3_state_t*>(block_)));
  std::string tail = std::string(chain_.Raw()) + std::string(block.Raw());
  for (int i = 0; i < 8; ++i) tail.push_back(static_cast<char>(offset_ >> (8 * i)));
  return ContentHash(tail);
}

uint64_t Hash64(absl::string_view data, uint64_t seed) {
  return XXH3_64bits_withSeed(data.data(), data.size(), seed);
}

}  // namespace m3serve
