// File: server/stream_plan.h
//
// Which instances a stream delivers, in which order, and where it resumes.
//
// The resolved selection has N instances at positions 0..N-1 (key order). The
// order maps stream slot s to a selection position: s itself (sequential) or
// a keyed permutation of [0, N) (shuffled; key = selection digest, seed,
// epoch). Shard i of c takes slots i, i+c, i+2c, ...: the j-th instance of the
// shard is order(j*c + i). So shards are disjoint, their union is the
// selection, and sizes differ by at most one (drop_remainder: all floor(N/c)).
//
// Resume tokens name the next shard position and are tied to the selection,
// sharding, order, seed, epoch and dataset version, authenticated with
// HMAC-SHA256 under the server's token key (replicas share it).
#ifndef M3SERVE_SERVER_STREAM_PLAN_H_
#define M3SERVE_SERVER_STREAM_PLAN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/dataset.h"
#include "server/permutation.h"

namespace m3serve::server {

struct PlanParams {
  uint32_t shard_index = 0;
  uint32_t shard_count = 1;
  bool drop_remainder = false;
  bool shuffled = false;
  uint64_t seed = 0;
  uint64_t epoch = 0;
};

class StreamPlan {
 public:
  // InvalidArgument (naming sharding.count / sharding.index) for bad sharding.
  // `dataset_version` is the store fingerprint in hex; `token_key` the secret
  // that authenticates tokens.
  static absl::StatusOr<StreamPlan> Create(std::shared_ptr<const ResolvedSelection> selection,
                                           const PlanParams& params, std::string dataset_version,
                                           std::string token_key);

  // Instances in this shard.
  uint64_t shard_size() const { return shard_size_; }
  // Selection position of the j-th instance of the shard (j < shard_size()).
  uint64_t SelectionPosition(uint64_t j) const;
  // (group index, ordinal) of the j-th instance of the shard.
  std::pair<size_t, uint64_t> Locate(uint64_t j) const {
    return selection_->Locate(SelectionPosition(j));
  }
  const ResolvedSelection& selection() const { return *selection_; }

  // A token that resumes at shard position `next`.
  std::string Token(uint64_t next) const;
  // The shard position a token resumes at. InvalidArgument naming what does
  // not match (selection, sharding, order/seed/epoch, dataset version) or
  // that the token is corrupt / forged.
  absl::StatusOr<uint64_t> Resume(absl::string_view token) const;

 private:
  StreamPlan(std::shared_ptr<const ResolvedSelection> selection, const PlanParams& params,
             std::string version, std::string key);
  std::string Mac(absl::string_view payload) const;

  std::shared_ptr<const ResolvedSelection> selection_;
  PlanParams params_;
  std::string version_;
  std::string key_;
  Permutation permutation_;
  uint64_t shard_size_ = 0;
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_STREAM_PLAN_H_
