#include "server/batch_producer.h"

#include <malloc.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "storage/key_codec.h"

namespace m3serve::server {

std::shared_ptr<BatchProducer> BatchProducer::Create(const Dataset* dataset, std::shared_ptr<const StreamPlan> plan,
                                                     uint64_t begin, uint64_t end, ProducerOptions options,
                                                     ServingBudget* budget, TaskRunner run, Metrics* metrics) {
  return std::shared_ptr<BatchProducer>(new BatchProducer(dataset, std::move(plan), begin, end, std::move(options),
                                                          budget, std::move(run), metrics));
}

BatchProducer::BatchProducer(const Dataset* dataset, std::shared_ptr<const StreamPlan> plan, uint64_t begin,
                             uint64_t end, ProducerOptions options, ServingBudget* budget, TaskRunner run,
                             Metrics* metrics)
    : dataset_(dataset),
      plan_(std::move(plan)),
      options_(std::move(options)),
      budget_(budget),
      run_(std::move(run)),
      metrics_(metrics),
      end_(end),
      next_begin_(begin) {
  budget_->StreamStarted();
}

BatchProducer::~BatchProducer() {
  // Tasks hold the producer alive, so nothing runs now; what is left goes back.
  budget_->Add(-held_);
  chunks_.clear();
  // The last stream's producer gone (a cancelled stream's can outlive its
  // RPC until its running tasks stop): give the heap's free memory back to
  // the OS, now that the built messages are freed.
  if (budget_->StreamEnded()) malloc_trim(0);
}

void BatchProducer::Start(std::function<void()> wake) {
  {
    absl::MutexLock lock(&wake_mu_);
    wake_ = std::move(wake);
  }
  absl::MutexLock lock(&mu_);
  started_ = true;
  ScheduleLocked();
}

uint64_t BatchProducer::EstimateLocked() const {
  if (built_instances_ > 0) return std::max<uint64_t>(1, built_bytes_ / built_instances_);
  return EstimateInstanceBytes(options_.build);
}

// Chunks start while the window and the budget allow. A stream may always have
// one chunk (progress), sized to its share of the budget; more only within the
// budget. So a stream whose consumer stopped holds at most one chunk of about
// its share plus the window's reservations, and does no more work.
void BatchProducer::ScheduleLocked() {
  while (started_ && !stopping_.load() && next_begin_ < end_) {
    const uint64_t estimate = EstimateLocked();
    // Chunks are work units: positions, tokens and batches do not depend on
    // their size. The first is small, so the first message comes after a few
    // instances' work rather than a whole batch's.
    uint64_t size = std::clamp<uint64_t>(static_cast<uint64_t>(budget_->Share()) / estimate, 1,
                                         std::max<uint32_t>(1, options_.batch_size));
    if (next_seq_ == 0) size = std::min(size, std::max<uint64_t>(1, options_.first_chunk));
    const uint64_t end = std::min(end_, next_begin_ + size);
    const int64_t reserve = static_cast<int64_t>((end - next_begin_) * estimate);
    if (chunks_.empty()) {
      budget_->Add(reserve);
    } else if (static_cast<int>(chunks_.size()) >= 1 + options_.prefetch_chunks || !budget_->TryReserve(reserve)) {
      break;
    }
    const uint64_t begin = next_begin_;
    const uint64_t seq = next_seq_++;
    chunks_[seq].bytes = reserve;
    held_ += reserve;
    next_begin_ = end;
    run_([self = shared_from_this(), seq, begin, end] { self->Produce(seq, begin, end); });
  }
}

void BatchProducer::Produce(uint64_t seq, uint64_t begin, uint64_t end) {
  if (stopping_.load()) return;
  Chunk chunk;
  chunk.ready = true;
  chunk.status = Assemble(begin, end, &chunk);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_.load()) return;  // Cancel gave the reservation back
    Chunk& slot = chunks_[seq];
    // The reservation becomes what was built.
    budget_->Add(chunk.bytes - slot.bytes);
    held_ += chunk.bytes - slot.bytes;
    if (chunk.status.ok()) {
      built_bytes_ += static_cast<uint64_t>(chunk.bytes);
      built_instances_ += end - begin;
    }
    slot = std::move(chunk);
    ScheduleLocked();
  }
  Wake();
}

absl::Status BatchProducer::Assemble(uint64_t begin, uint64_t end, Chunk* chunk) {
  const StreamPlan& plan = *plan_;
  std::vector<InstanceKey> keys;
  std::vector<StreamPlan::Located> where;
  keys.reserve(end - begin);
  where.reserve(end - begin);
  StreamPlan::Cursor cursor(&plan);
  for (uint64_t j = begin; j < end; ++j) {
    where.push_back(cursor.At(j));
    keys.emplace_back(*where.back().group, where.back().ordinal);
  }
  auto got = dataset_->reader().MultiGetInstances(keys);
  auto message = std::make_unique<v1::InstanceBatch>();
  uint64_t message_bytes = 0;
  auto close = [&](uint64_t next) {
    message->set_resume_token(plan.Token(next));
    message->set_shard_size(plan.shard_size());
    message->set_next_position(next);
    message->set_plan_fingerprint(plan.fingerprint());
    message->set_epoch_samples(plan.epoch_samples());
    chunk->bytes += static_cast<int64_t>(message->ByteSizeLong());
    chunk->messages.push_back(std::move(message));
    message = std::make_unique<v1::InstanceBatch>();
    message_bytes = 0;
  };
  for (uint64_t j = begin; j < end; ++j) {
    // A stream that ended (cancelled, cut, failed) stops its work at once.
    if (stopping_.load(std::memory_order_relaxed)) return absl::CancelledError("the stream ended");
    const size_t i = j - begin;
    if (!got[i].ok()) {
      return absl::DataLossError(absl::StrCat("instance ", storage::FormatInstanceId(keys[i].first, keys[i].second),
                                              " cannot be read: ", got[i].status().message()));
    }
    v1::Instance inst;
    M3SERVE_RETURN_IF_ERROR(BuildInstance(*dataset_, *got[i], options_.build, metrics_, &inst));
    inst.set_shard_position(j);
    inst.set_sample_index(where[i].sample);
    inst.set_component(plan.order().components()[where[i].component].key);
    const uint64_t size = inst.ByteSizeLong() + 8;
    if (size > options_.max_send_bytes) {
      // Alone in its message it still could not be sent: fail once, clearly
      // (FAILED_PRECONDITION is not retried; the same request fails the same way).
      return absl::FailedPreconditionError(absl::StrCat(
          "instance ", inst.id(), " takes ", size, " bytes, above the largest message the server sends (",
          options_.max_send_bytes, " bytes, --max-message-bytes)"));
    }
    if (message->instances_size() > 0 && message_bytes + size > options_.message_bytes) close(j);
    *message->add_instances() = std::move(inst);
    message_bytes += size;
  }
  if (message->instances_size() > 0) close(end);
  return absl::OkStatus();
}

BatchProducer::Pulled BatchProducer::Pull(std::unique_ptr<v1::InstanceBatch>* out, absl::Status* status) {
  absl::MutexLock lock(&mu_);
  while (true) {
    if (stopping_.load()) {
      *status = absl::CancelledError("the stream ended");
      return Pulled::kFailed;
    }
    auto it = chunks_.find(pull_seq_);
    if (it == chunks_.end()) {
      if (next_begin_ >= end_) return Pulled::kEnd;
      ScheduleLocked();
      return Pulled::kWait;
    }
    Chunk& c = it->second;
    if (!c.ready) return Pulled::kWait;
    if (!c.status.ok()) {
      *status = c.status;
      return Pulled::kFailed;
    }
    if (c.next_message < c.messages.size()) {
      *out = std::move(c.messages[c.next_message++]);
      return Pulled::kMessage;
    }
    // Every message of the chunk was handed out, and the consumer is done
    // with the last one: its bytes go back, and the window moves on.
    budget_->Add(-c.bytes);
    held_ -= c.bytes;
    chunks_.erase(it);
    ++pull_seq_;
    ScheduleLocked();
  }
}

void BatchProducer::Cancel() {
  absl::MutexLock lock(&mu_);
  if (stopping_.exchange(true)) return;
  budget_->Add(-held_);
  held_ = 0;
  chunks_.clear();
}

void BatchProducer::Detach() {
  absl::MutexLock lock(&wake_mu_);
  wake_ = nullptr;
}

void BatchProducer::Wake() {
  absl::MutexLock lock(&wake_mu_);
  if (wake_) wake_();
}

int64_t BatchProducer::held_bytes() const {
  absl::MutexLock lock(&mu_);
  return held_;
}

uint64_t BatchProducer::chunks_started() const {
  absl::MutexLock lock(&mu_);
  return next_seq_;
}

}  // namespace m3serve::server
