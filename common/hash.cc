#include "common/hash.h"

#include <xxhash.h>

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

uint64_t Hash64(absl::string_view data, uint64_t seed) {
  return XXH3_64bits_withSeed(data.data(), data.size(), seed);
}

}  // namespace m3serve
