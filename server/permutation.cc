#include "server/permutation.h"

#include <xxhash.h>

namespace m3serve::server {
namespace {

constexpr int kRounds = 6;

uint64_t Round(uint64_t key, int round, uint64_t x) {
  uint64_t buf[2] = {x, static_cast<uint64_t>(round)};
  return XXH3_64bits_withSeed(buf, sizeof(buf), key);
}

}  // namespace

Permutation::Permutation(uint64_t n, uint64_t key) : n_(n), key_(key) {
  int bits = 2;
  while (bits < 64 && (uint64_t{1} << bits) < n) ++bits;
  if (bits % 2) ++bits;
  half_bits_ = bits / 2;
  half_mask_ = (uint64_t{1} << half_bits_) - 1;
}

uint64_t Permutation::Encrypt(uint64_t x) const {
  uint64_t left = x >> half_bits_, right = x & half_mask_;
  for (int r = 0; r < kRounds; ++r) {
    uint64_t next = left ^ (Round(key_, r, right) & half_mask_);
    left = right;
    right = next;
  }
  return (left << half_bits_) | right;
}

uint64_t Permutation::operator()(uint64_t i) const {
  // Cycle walking: the domain is < 4n, so a few steps at most on average.
  uint64_t y = Encrypt(i);
  while (y >= n_) y = Encrypt(y);
  return y;
}

}  // namespace m3serve::server
