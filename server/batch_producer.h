// File: server/batch_producer.h
//
// The serving core of one stream, without gRPC: it turns a stream plan's
// positions [begin, end) into InstanceBatch messages, in order. Work goes out
// in units ("chunks" of at most batch_size instances, sized to the stream's
// share of the server budget) to a task runner (the fair worker pool in the
// server, a hand-driven queue in tests), up to a prefetch window; each
// chunk's bytes are reserved from the ServingBudget before its work starts
// and released once its last message is no longer needed. A consumer pulls
// messages one at a time (the gRPC reactor after each completed write); a
// consumer that stops pulling leaves the stream holding at most one chunk of
// about its share (plus the window, within the budget), and no more work is
// started for it.
//
// Threads: Pull, Cancel and Detach may be called from any thread; `wake` is
// called from a task runner thread, never while the producer's lock is held,
// and never after Detach returned. A consumer may call Pull from `wake`.
#ifndef M3SERVE_SERVER_BATCH_PRODUCER_H_
#define M3SERVE_SERVER_BATCH_PRODUCER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "m3serve/v1/dataset.pb.h"
#include "server/dataset.h"
#include "server/instance_builder.h"
#include "server/metrics.h"
#include "server/serving_budget.h"
#include "server/stream_plan.h"

namespace m3serve::server {

struct ProducerOptions {
  BuildOptions build;
  uint32_t batch_size = 32;          // most instances in one chunk
  uint64_t message_bytes = 2u << 20;  // a message closes before passing this
  uint64_t max_send_bytes = 65u << 20;  // one instance above it fails the stream
  int prefetch_chunks = 2;           // chunks ahead of the one being written
  uint64_t first_chunk = 4;          // instances in the first chunk (fast start)
};

// Runs a task, now or later, on some thread.
using TaskRunner = std::function<void(std::function<void()>)>;

class BatchProducer : public std::enable_shared_from_this<BatchProducer> {
 public:
  enum class Pulled { kMessage, kWait, kEnd, kFailed };

  // Serve positions [begin, end) of `plan`. `dataset`, `budget` and `metrics`
  // (may be null) must outlive the producer and its tasks.
  static std::shared_ptr<BatchProducer> Create(const Dataset* dataset, std::shared_ptr<const StreamPlan> plan,
                                               uint64_t begin, uint64_t end, ProducerOptions options,
                                               ServingBudget* budget, TaskRunner run, Metrics* metrics);
  ~BatchProducer();

  // Start the work; `wake` is called whenever Pull may have something new.
  void Start(std::function<void()> wake);
  // The next message, in order:
  //   kMessage: *out is it; the message handed out before it is no longer
  //             needed (its bytes go back to the budget);
  //   kWait: not built yet, wake() follows;
  //   kEnd: every message was handed out;
  //   kFailed: *status says why (DataLoss: unreadable instance or image;
  //            FailedPrecondition: an instance too large to send; ...).
  Pulled Pull(std::unique_ptr<v1::InstanceBatch>* out, absl::Status* status);
  // Stop all work (running tasks stop at their next instance) and give back
  // everything held; Pull answers kFailed (Cancelled) from now on.
  void Cancel();
  // Never call wake again; returns after a running wake returned. Do not call
  // from wake.
  void Detach();

  // Bytes this stream holds of the budget now.
  int64_t held_bytes() const;
  // Chunks started so far (tests).
  uint64_t chunks_started() const;

 private:
  struct Chunk {
    bool ready = false;
    absl::Status status;
    std::vector<std::unique_ptr<v1::InstanceBatch>> messages;
    size_t next_message = 0;
    int64_t bytes = 0;  // reserved (estimate) until ready, then built
  };

  BatchProducer(const Dataset* dataset, std::shared_ptr<const StreamPlan> plan, uint64_t begin, uint64_t end,
                ProducerOptions options, ServingBudget* budget, TaskRunner run, Metrics* metrics);
  // Bytes one instance is expected to take: the average built so far, else
  // the bound from the image options.
  uint64_t EstimateLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Produce(uint64_t seq, uint64_t begin, uint64_t end);
  absl::Status Assemble(uint64_t begin, uint64_t end, Chunk* chunk);
  void Wake();

  const Dataset* const dataset_;
  const std::shared_ptr<const StreamPlan> plan_;
  const ProducerOptions options_;
  ServingBudget* const budget_;
  const TaskRunner run_;
  Metrics* const metrics_;
  const uint64_t end_;

  mutable absl::Mutex mu_;
  std::atomic<bool> stopping_{false};  // read by tasks without mu_
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_begin_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pull_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, Chunk> chunks_ ABSL_GUARDED_BY(mu_);
  int64_t held_ ABSL_GUARDED_BY(mu_) = 0;  // of the budget, = sum of chunks_' bytes
  uint64_t built_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t built_instances_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex wake_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::function<void()> wake_ ABSL_GUARDED_BY(wake_mu_);
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_BATCH_PRODUCER_H_
