// File: server/permutation.h
//
// A keyed pseudo-random permutation of [0, n) in O(1) memory: a balanced
// Feistel network over the smallest even-bit domain >= n, with cycle walking.
// Used to shuffle selections of millions of instances without materialising
// an order.
#ifndef M3SERVE_SERVER_PERMUTATION_H_
#define M3SERVE_SERVER_PERMUTATION_H_

#include <cstdint>

namespace m3serve::server {

class Permutation {
 public:
  // A permutation of [0, n) determined by `key`. n may be 0.
  Permutation(uint64_t n, uint64_t key);

  // The image of i (requires i < n). Thread-safe.
  uint64_t operator()(uint64_t i) const;

  uint64_t size() const { return n_; }

 private:
  uint64_t Encrypt(uint64_t x) const;

  uint64_t n_;
  uint64_t key_;
  int half_bits_;
  uint64_t half_mask_;
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_PERMUTATION_H_
