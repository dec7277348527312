// File: server/epoch_order.h
//
// The order of one epoch as a pure function: global sample index g (0 <= g <
// size()) -> (component, position in the component's selection), determined
// by the components, their quotas, the order (sequential or shuffled), the
// seed and the epoch. Ranks, workers and batches are views of this sequence
// (server/stream_view.h); nothing here depends on them.
//
// Components. A plain selection is one component whose quota is its size (or
// the epoch size asked for). A mixture has several; component c has n_c
// instances and a quota q_c of the epoch's E samples (Hamilton apportionment
// of E by the weights: every q_c is floor or ceil of E * w_c / sum(w)).
//
// Within a component the samples of all epochs form one endless sequence: the
// j-th sample of component c in epoch e is its t-th, t = e * q_c + j, drawn
// from pass t / n_c at index t mod n_c, each pass a fresh keyed permutation
// (shuffled) or key order. So a component smaller than its quota repeats with
// a new order each pass, and a larger one is subsampled with different
// instances each epoch until every instance has been seen.
//
// Interleaving. Unstratified: the epoch is the multiset of quotas laid out
// component by component, then (shuffled) permuted by one keyed permutation
// of [0, E). Stratified with stratum S: the epoch is cut into blocks of S
// samples; block b holds floor(S * q_c / E) or that plus one samples of
// component c (the extra seats go to the components furthest behind their
// share, so over blocks each tracks its share), permuted within the block
// when shuffled. Every block (so every global batch of S = W * B samples)
// holds each component's share to within one.
//
// Memory is O(components), plus for stratified orders one checkpoint of the
// per-component counts every kCheckpointBlocks blocks.
#ifndef M3SERVE_SERVER_EPOCH_ORDER_H_
#define M3SERVE_SERVER_EPOCH_ORDER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/hash.h"
#include "server/dataset.h"
#include "server/permutation.h"

namespace m3serve::server {

// One component of an epoch: a resolved selection and its weight.
struct OrderComponent {
  std::string key;  // "coco", "coco:en"; "" for a plain selection
  std::shared_ptr<const ResolvedSelection> selection;
  double weight = 1;  // > 0, relative
};

struct OrderParams {
  bool shuffled = false;
  uint64_t seed = 0;
  uint64_t epoch = 0;
  // Samples per epoch; 0: the natural size (sum of the components' sizes).
  uint64_t epoch_size = 0;
  // Stratified blocks of `stratum` samples (0: unstratified).
  uint64_t stratum = 0;
};

class EpochOrder {
 public:
  static constexpr uint64_t kCheckpointBlocks = 256;
  // The largest epoch: quotas and deficits stay exact in 64-bit arithmetic.
  static constexpr uint64_t kMaxEpochSize = uint64_t{1} << 31;
  // Stratified: at most this many blocks x components (planning time and the
  // checkpoints' memory are proportional to it).
  static constexpr uint64_t kMaxStrataWork = uint64_t{1} << 22;

  // InvalidArgument: no component, an empty component, a weight that is not
  // finite and > 0, an epoch size above kMaxEpochSize, a stratum so small
  // that blocks x components exceeds kMaxStrataWork.
  static absl::StatusOr<std::shared_ptr<const EpochOrder>> Create(std::vector<OrderComponent> components,
                                                                  const OrderParams& params);

  // Samples in the epoch (E).
  uint64_t size() const { return size_; }
  const std::vector<OrderComponent>& components() const { return components_; }
  // Samples of component c per epoch.
  uint64_t quota(size_t c) const { return quota_[c]; }
  const OrderParams& params() const { return params_; }
  // Identifies the order of every epoch: components (their groups and sizes),
  // quotas, stratum, order and seed; not the epoch.
  const Hash128& digest() const { return digest_; }
  // The part of digest() that is not the order and seed: components, their
  // groups and sizes, quotas and stratum.
  const Hash128& components_digest() const { return components_digest_; }

  struct Sample {
    size_t component = 0;
    uint64_t position = 0;  // in the component's selection, < its total()
  };

  // Sequential-friendly access: keeps the last stratified block it computed.
  // Not thread-safe; make one per thread. The order must outlive it.
  class Cursor {
   public:
    explicit Cursor(const EpochOrder* order) : order_(order) {}
    // The g-th sample of the epoch (g < size()).
    Sample At(uint64_t g);

   private:
    void Seek(uint64_t block);
    // Position in component c's selection of its j-th sample this epoch.
    uint64_t ComponentPosition(size_t c, uint64_t j);
    const EpochOrder* order_;
    uint64_t block_ = UINT64_MAX;
    std::vector<uint64_t> before_;  // per component, samples before block_
    std::vector<uint64_t> in_;      // per component, samples in block_
    std::optional<Permutation> block_order_;  // of block_'s seats (shuffled)
    // Per component, the permutation of the pass last used (keys are hashed
    // once per pass, not per sample).
    std::vector<std::optional<std::pair<uint64_t, Permutation>>> passes_;
  };

  // The g-th sample (a fresh cursor; prefer a Cursor for runs of samples).
  Sample At(uint64_t g) const { return Cursor(this).At(g); }

 private:
  EpochOrder() = default;
  void BuildStrata();
  // Extra seats per component after `blocks` whole blocks, from the nearest checkpoint.
  void ExtrasAfter(uint64_t blocks, std::vector<uint64_t>* extras) const;
  // One greedy step: which components get this block's extra seats.
  void GiveExtras(std::vector<int64_t>* deficit, std::vector<uint64_t>* extras) const;
  uint64_t BlockSize(uint64_t b) const;
  // The key of component c's permutation in pass `pass`.
  uint64_t PassKey(size_t c, uint64_t pass) const;

  std::vector<OrderComponent> components_;
  OrderParams params_;
  uint64_t size_ = 0;
  std::vector<uint64_t> quota_;
  std::vector<uint64_t> quota_prefix_;  // size M + 1 (unstratified layout)
  Hash128 digest_;
  Hash128 components_digest_;
  uint64_t global_key_ = 0;
  std::optional<Permutation> global_order_;  // unstratified, shuffled mixtures
  // Stratified: blocks, seats per block, and checkpoints of extra seats.
  uint64_t blocks_ = 0;
  std::vector<uint64_t> base_;        // floor(S * w_c) seats every whole block
  std::vector<int64_t> rate_;         // S * w_c - base, scaled by kScale
  uint64_t extra_seats_ = 0;          // S - sum(base_)
  std::vector<std::vector<uint64_t>> checkpoints_;  // [k]: extras after k * kCheckpointBlocks blocks
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_EPOCH_ORDER_H_
