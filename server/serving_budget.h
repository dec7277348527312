// File: server/serving_budget.h
//
// The server-wide byte budget (--prefetch-budget-mb) of what streams and
// lookups hold: instances being built, built messages waiting to be written,
// and responses not yet received. Work reserves its estimated bytes before it
// starts and corrects the reservation to the real size once built; holders
// release what they hold when gRPC is done with it.
#ifndef M3SERVE_SERVER_SERVING_BUDGET_H_
#define M3SERVE_SERVER_SERVING_BUDGET_H_

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace m3serve::server {

class ServingBudget {
 public:
  // Bounds of one stream's share of the budget (the size of its work units).
  static constexpr int64_t kMinShare = 1 << 20;
  static constexpr int64_t kMaxShare = 16 << 20;

  explicit ServingBudget(int64_t limit) : limit_(limit) {}
  ServingBudget(const ServingBudget&) = delete;
  ServingBudget& operator=(const ServingBudget&) = delete;

  int64_t limit() const { return limit_; }
  int64_t used() const { return used_.load(); }
  // Hold `bytes` more (negative: release), whatever the limit.
  void Add(int64_t bytes) { used_ += bytes; }
  // Hold `bytes` more if that stays within the limit.
  bool TryReserve(int64_t bytes) {
    int64_t now = used_.load();
    while (now + bytes <= limit_) {
      if (used_.compare_exchange_weak(now, now + bytes)) return true;
    }
    return false;
  }
  // Streams drawing on the budget (each registers for its lifetime).
  void StreamStarted() { ++streams_; }
  // True when the stream that ended was the last.
  bool StreamEnded() { return --streams_ == 0; }
  int streams() const { return streams_.load(); }
  // One stream's share: the budget divided among the streams, within
  // [kMinShare, kMaxShare].
  int64_t Share() const { return std::clamp<int64_t>(limit_ / std::max(1, streams_.load()), kMinShare, kMaxShare); }

 private:
  const int64_t limit_;
  std::atomic<int64_t> used_{0};
  std::atomic<int> streams_{0};
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_SERVING_BUDGET_H_
