// File: server/stream_plan.h
//
// Which instances a stream delivers, in which order, and where it resumes.
//
// The epoch is one global sequence of E samples, g -> instance
// (server/epoch_order.h: the selection or the mixture's components, order,
// seed, epoch). A stream is a view of it, position j of the view -> g:
//
// Sharding view (StreamRequest.sharding): shard i of c takes g = j*c + i; so
//   shards are disjoint, their union is the epoch, and sizes differ by at
//   most one (drop_remainder: all floor(E/c)).
// Schedule view (StreamRequest.schedule, a training job's geometry): from the
//   start sample G (the samples the job has consumed), global step s takes
//   g in [G + s*W*B, G + (s+1)*W*B) for world size W and B samples per rank;
//   rank r takes the r-th B of them; worker k of the rank's K data-loader
//   workers takes whole steps k, k+K, k+2K, ... So the data position of a job
//   is one number, G + steps*W*B, the same on every rank, and a job resumed
//   from it with any W, B and K continues exactly where it stopped. The last
//   step may be partial (drop_remainder: it is dropped, so every rank takes
//   the same number of steps). A start at or past the epoch's end is an
//   empty stream.
//
// Resume tokens name the next view position and are tied to the dataset
// version, the components (selection or mixture), order, seed, epoch and
// view, authenticated with HMAC-SHA256 under the server's token key
// (replicas share it).
#ifndef M3SERVE_SERVER_STREAM_PLAN_H_
#define M3SERVE_SERVER_STREAM_PLAN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/dataset.h"
#include "server/epoch_order.h"

namespace m3serve::server {

struct PlanParams {
  // Sharding view (when !schedule).
  uint32_t shard_index = 0;
  uint32_t shard_count = 1;
  bool drop_remainder = false;  // both views
  // Order: shuffle, seed, epoch, and a mixture's epoch size and stratum.
  OrderParams order;
  // Schedule view.
  bool schedule = false;
  uint32_t world_size = 1;
  uint32_t rank = 0;
  uint32_t batch_size = 1;  // per rank
  uint32_t num_workers = 1;
  uint32_t worker = 0;
  uint64_t start_sample = 0;
};

// "sharding 1 of 4 (drop_remainder false)", "schedule rank 0 of world 2, ...":
// a view as logs and error messages name it.
std::string DescribeView(const PlanParams& p);

class StreamPlan {
 public:
  // InvalidArgument naming the field for a bad view (sharding.count /
  // sharding.index, schedule.*), or from EpochOrder::Create. `dataset_version`
  // is the store fingerprint in hex; `token_key` the secret that
  // authenticates tokens.
  static absl::StatusOr<StreamPlan> Create(std::vector<OrderComponent> components, const PlanParams& params,
                                           std::string dataset_version, std::string token_key);
  // A plan over a plain selection (one component).
  static absl::StatusOr<StreamPlan> Create(std::shared_ptr<const ResolvedSelection> selection,
                                           const PlanParams& params, std::string dataset_version,
                                           std::string token_key);

  // Instances in this view.
  uint64_t shard_size() const { return size_; }
  // Samples in the epoch (all views together).
  uint64_t epoch_samples() const { return order_->size(); }
  // Global sample index of view position j (j < shard_size()).
  uint64_t Sample(uint64_t j) const;
  const EpochOrder& order() const { return *order_; }
  const PlanParams& params() const { return params_; }
  // The plan's identity, 32 hex digits: dataset version, components, order
  // and seed (not the epoch, not the view). A data position is only valid
  // under the fingerprint it was counted in.
  const std::string& fingerprint() const { return fingerprint_; }

  struct Located {
    const storage::GroupKey* group = nullptr;
    uint64_t ordinal = 0;
    uint64_t sample = 0;   // global sample index
    size_t component = 0;  // index into order().components()
  };
  // Sequential-friendly lookups; one per thread. The plan must outlive it.
  class Cursor {
   public:
    explicit Cursor(const StreamPlan* plan) : plan_(plan), order_(&plan->order()) {}
    // The instance at view position j (j < shard_size()).
    Located At(uint64_t j);

   private:
    const StreamPlan* plan_;
    EpochOrder::Cursor order_;
  };
  Located Locate(uint64_t j) const { return Cursor(this).At(j); }

  // A token that resumes at view position `next`.
  std::string Token(uint64_t next) const;
  // The view position a token resumes at. InvalidArgument naming what does
  // not match (dataset version, selection or mixture, sharding or schedule,
  // order/seed/epoch) or that the token is corrupt / forged.
  absl::StatusOr<uint64_t> Resume(absl::string_view token) const;

 private:
  StreamPlan(std::shared_ptr<const EpochOrder> order, const PlanParams& params, std::string version,
             std::string key);
  std::string Mac(absl::string_view payload) const;
  std::string ViewText(const std::string& view) const;

  std::shared_ptr<const EpochOrder> order_;
  PlanParams params_;
  std::string version_;
  std::string key_;
  std::string fingerprint_;
  uint64_t size_ = 0;
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_STREAM_PLAN_H_
