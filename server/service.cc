#include "server/service.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/stream_setup.h"
#include "storage/key_codec.h"

namespace m3serve::server {
namespace {

// A stream refused before it starts (stream limit).
// A stream refused before any work (draining, authentication, stream limits).
// It gets an audit line too, so refused attempts are on record.
class RejectedStream final : public grpc::ServerWriteReactor<v1::InstanceBatch> {
 public:
  RejectedStream(grpc::CallbackServerContext* ctx, const std::string& identity, const grpc::Status& s) {
    M3_LOG(INFO) << "stream refused peer=" << ctx->peer() << " identity=" << identity
                 << " status=" << CodeName(static_cast<absl::StatusCode>(s.error_code())) << ": "
                 << s.error_message();
    Finish(s);
  }
  void OnDone() override { delete this; }
};

std::string Describe(const SelectionSpec& s) {
  std::string out;
  auto add = [&](const char* name, const std::vector<std::string>& v) {
    // Names are escaped: a rejected request's selection is client text.
    if (!v.empty()) {
      absl::StrAppend(&out, " ", name, "=",
                      absl::StrJoin(v, ",", [](std::string* o, const std::string& x) {
                        absl::StrAppend(o, absl::CEscape(x));
                      }));
    }
  };
  add("tasks", s.tasks);
  add("categories", s.categories);
  add("splits", s.splits);
  add("languages", s.languages);
  add("licenses", s.licenses);
  add("exclude_tasks", s.exclude_tasks);
  if (s.commercial_use_only) absl::StrAppend(&out, " commercial_use_only");
  if (s.modality) absl::StrAppend(&out, " modality=", storage::ModalityName(*s.modality));
  return out.empty() ? " (everything)" : out;
}

std::string ViewText(const PlanParams& p) {
  if (!p.schedule) return absl::StrCat(" shard=", p.shard_index, "/", p.shard_count);
  return absl::StrCat(" rank=", p.rank, "/", p.world_size, " batch=", p.batch_size, " worker=", p.worker, "/",
                      p.num_workers, " start_sample=", p.start_sample);
}

}  // namespace

// One StreamInstances call. Batches ("chunks" of batch_size instances, each
// split into messages under the byte cap) are produced on the worker pool,
// in parallel up to the prefetch window, and written strictly in order with
// one write in flight.
class StreamReactor final : public grpc::ServerWriteReactor<v1::InstanceBatch> {
 public:
  static constexpr uint64_t kFirstChunk = 4;
  // Bounds of a chunk's share of the prefetch budget.
  static constexpr int64_t kMinChunkBytes = 1 << 20;
  static constexpr int64_t kMaxChunkBytes = 16 << 20;

  StreamReactor(DatasetServiceImpl* svc, grpc::CallbackServerContext* ctx, const v1::StreamRequest* req,
                const Identity* identity)
      : svc_(svc),
        identity_(identity),
        fair_key_{identity ? identity->name : "", svc->next_stream_id_++},
        peer_(ctx->peer()),
        start_(std::chrono::steady_clock::now()) {
    svc_->metrics_->StreamStarted();
    absl::MutexLock lock(&mu_);
    absl::Status s = Setup(*req);
    if (!s.ok()) {
      FinishLocked(s);
      return;
    }
    M3_LOG(INFO) << "stream start peer=" << peer_ << " identity=" << IdentityName() << Describe(settings_.selection)
                 << ViewText(settings_.plan) << " plan=" << plan_->fingerprint()
                 << (settings_.plan.shuffled ? absl::StrCat(" shuffled seed=", settings_.plan.seed) : " sequential")
                 << " epoch=" << settings_.plan.epoch << " from=" << next_begin_ << " to=" << end_
                 << " of " << plan_->shard_size();
    ScheduleLocked();
    WriteNextLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (ok) {
      sent_instances_ += in_flight_->instances_size();
      uint64_t images = 0;
      for (const auto& x : in_flight_->instances()) images += x.images_size();
      const uint64_t bytes = in_flight_->ByteSizeLong();
      sent_bytes_ += bytes;
      svc_->metrics_->Sent(in_flight_->instances_size(), images, bytes);
    }
    in_flight_.reset();
    if (!ok) {
      FinishLocked(absl::CancelledError(svc_->cutting_ ? "cut by the server at the end of its drain"
                                                       : "the client stopped receiving"));
      return;
    }
    WriteNextLocked();
    ScheduleLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    if (!writing_) FinishLocked(absl::CancelledError(CancelReason()));
  }

  void OnDone() override {
    bool delete_me;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      stopping_ = true;
      for (auto& [seq, chunk] : chunks_) svc_->prefetched_bytes_ -= chunk.bytes;  // built or reserved
      chunks_.clear();
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      // The audit line: who asked for what and received how much of which licenses.
      M3_LOG(INFO) << "stream end peer=" << peer_ << " identity=" << IdentityName()
                   << Describe(settings_.selection) << " licenses=[" << absl::StrJoin(licenses_, "|")
                   << "] instances=" << sent_instances_ << " bytes=" << sent_bytes_
                   << " seconds=" << secs << " status="
                   << (final_status_.ok() ? "OK" : final_status_.ToString());
      delete_me = pending_tasks_ == 0;
    }
    svc_->metrics_->StreamEnded();
    svc_->ReleaseIdentityStream(identity_);
    // The last stream gone: give the heap's free memory back to the OS.
    if (--svc_->active_streams_ == 0) malloc_trim(0);
    if (delete_me) delete this;
  }

 private:
  struct Chunk {
    bool ready = false;
    absl::Status status;
    std::vector<std::unique_ptr<v1::InstanceBatch>> messages;
    size_t next_message = 0;
    int64_t bytes = 0;
  };

  absl::Status Setup(const v1::StreamRequest& req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    StreamCaller caller;
    if (identity_ != nullptr) caller = {&identity_->entitlement, identity_->name};
    StreamSetup setup;
    absl::Status s = SetUpStream(req, *svc_->dataset_, svc_->options_.limits, caller,
                                 svc_->options_.token_key, &setup);
    settings_ = std::move(setup.settings);
    if (!s.ok()) return s;
    removed_by_policy_ = std::move(setup.removed_by_policy);
    licenses_ = std::move(setup.licenses);
    plan_.emplace(std::move(*setup.plan));
    next_begin_ = setup.begin;
    end_ = setup.end;
    return absl::OkStatus();
  }

  // Bytes one instance of this stream is expected to take once built: the
  // average of what it built so far, else a bound from the image options.
  uint64_t InstanceEstimateLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (built_instances_ > 0) return std::max<uint64_t>(1, built_bytes_ / built_instances_);
    return EstimateInstanceBytes(settings_.build);
  }

  // Start producing chunks while the window and the server budget allow. A
  // chunk's bytes are reserved from the server-wide budget before its work
  // starts (the estimate, corrected to the real size when it is built) and
  // released when its last message is handed to gRPC. A stream may always
  // have one chunk (progress), sized to its share of the budget; more only
  // within the budget. So a stalled stream holds at most one chunk of about
  // its share plus the message in flight, and does no more work.
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const ServiceOptions& o = svc_->options_;
    while (!finish_called_ && next_begin_ < end_) {
      const uint64_t estimate = InstanceEstimateLocked();
      const int64_t share = std::clamp<int64_t>(o.prefetch_budget_bytes / std::max(1, svc_->active_streams_.load()),
                                                kMinChunkBytes, kMaxChunkBytes);
      // Fast start: the first chunk is small, so the first batch arrives after a
      // few instances' work rather than a whole batch's. Chunks are work units:
      // positions, tokens and batches do not depend on their size.
      uint64_t size = std::clamp<uint64_t>(static_cast<uint64_t>(share) / estimate, 1, settings_.batch_size);
      if (next_seq_ == 0) size = std::min(size, kFirstChunk);
      const uint64_t end = std::min(end_, next_begin_ + size);
      const int64_t reserve = static_cast<int64_t>((end - next_begin_) * estimate);
      const bool allowed = chunks_.empty() ||
                           (static_cast<int>(chunks_.size()) < 1 + o.prefetch_batches &&
                            svc_->prefetched_bytes_.load() + reserve <= o.prefetch_budget_bytes);
      if (!allowed) break;
      const uint64_t begin = next_begin_;
      const uint64_t seq = next_seq_++;
      chunks_[seq].bytes = reserve;
      svc_->prefetched_bytes_ += reserve;
      ++pending_tasks_;
      next_begin_ = end;
      svc_->pool_->Submit(fair_key_, [this, seq, begin, end] { Produce(seq, begin, end); });
    }
  }

  // Worker pool: read, assemble and split one chunk.
  void Produce(uint64_t seq, uint64_t begin, uint64_t end) {
    {
      bool skip, delete_me = false;
      {
        absl::MutexLock lock(&mu_);
        skip = done_ || finish_called_;
        if (skip) delete_me = --pending_tasks_ == 0 && done_;
      }
      if (skip) {
        if (delete_me) delete this;
        return;
      }
    }
    Chunk chunk;
    chunk.ready = true;
    chunk.status = Assemble(begin, end, &chunk);
    bool delete_me = false;
    {
      absl::MutexLock lock(&mu_);
      --pending_tasks_;
      if (!done_) {
        // Correct the reservation to what was built (OnDone released it otherwise).
        svc_->prefetched_bytes_ += chunk.bytes - chunks_[seq].bytes;
        built_bytes_ += static_cast<uint64_t>(chunk.bytes);
        built_instances_ += end - begin;
        chunks_[seq] = std::move(chunk);
        if (!finish_called_) {
          WriteNextLocked();
          ScheduleLocked();
        }
      }
      delete_me = done_ && pending_tasks_ == 0;
    }
    if (delete_me) delete this;
  }

  absl::Status Assemble(uint64_t begin, uint64_t end, Chunk* chunk) {
    const Dataset& ds = *svc_->dataset_;
    const StreamPlan& plan = *plan_;
    std::vector<std::pair<storage::GroupKey, uint64_t>> keys;
    std::vector<StreamPlan::Located> where;
    keys.reserve(end - begin);
    where.reserve(end - begin);
    StreamPlan::Cursor cursor(&plan);
    for (uint64_t j = begin; j < end; ++j) {
      where.push_back(cursor.At(j));
      keys.emplace_back(*where.back().group, where.back().ordinal);
    }
    auto got = ds.store().MultiGetInstances(keys);
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
      auto& x = got[j - begin];
      if (!x.ok()) {
        return absl::DataLossError(absl::StrCat("instance ", storage::FormatInstanceId(keys[j - begin].first, keys[j - begin].second),
                                                " cannot be read: ", x.status().message()));
      }
      v1::Instance inst;
      M3SERVE_RETURN_IF_ERROR(BuildInstance(ds, *x, settings_.build, svc_->metrics_, &inst));
      inst.set_shard_position(j);
      inst.set_sample_index(where[j - begin].sample);
      inst.set_component(plan.order().components()[where[j - begin].component].key);
      const uint64_t size = inst.ByteSizeLong() + 8;
      if (size > svc_->options_.limits.max_send_bytes()) {
        // Alone in its message it still could not be sent: fail once, clearly
        // (FAILED_PRECONDITION is not retried; the same request fails the same way).
        return absl::FailedPreconditionError(absl::StrCat(
            "instance ", inst.id(), " takes ", size, " bytes, above the largest message the server sends (",
            svc_->options_.limits.max_send_bytes(), " bytes, --max-message-bytes)"));
      }
      if (message->instances_size() > 0 && message_bytes + size > settings_.message_bytes) close(j);
      *message->add_instances() = std::move(inst);
      message_bytes += size;
    }
    if (message->instances_size() > 0) close(end);
    return absl::OkStatus();
  }

  // Write the next message if none is in flight; finish at the end.
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!writing_ && !finish_called_) {
      if (cancelled_) {
        FinishLocked(absl::CancelledError(CancelReason()));
        return;
      }
      auto it = chunks_.find(write_seq_);
      if (it == chunks_.end()) {
        if (next_begin_ >= end_ && chunks_.empty()) FinishLocked(absl::OkStatus());
        return;
      }
      Chunk& c = it->second;
      if (!c.ready) return;
      if (!c.status.ok()) {
        FinishLocked(c.status);
        return;
      }
      if (c.next_message >= c.messages.size()) {
        svc_->prefetched_bytes_ -= c.bytes;
        chunks_.erase(it);
        ++write_seq_;
        continue;
      }
      in_flight_ = std::move(c.messages[c.next_message++]);
      if (first_message_) {
        for (const auto& t : removed_by_policy_) in_flight_->add_removed_by_policy(t);
        first_message_ = false;
      }
      writing_ = true;
      StartWrite(in_flight_.get());
    }
  }

  void FinishLocked(const absl::Status& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_called_) return;
    finish_called_ = true;
    stopping_ = true;
    final_status_ = s;
    if (!s.ok() && !absl::IsCancelled(s)) svc_->metrics_->Error(CodeName(s.code()));
    Finish(ToGrpcStatus(s));
  }

  std::string IdentityName() const { return identity_ ? identity_->name : "-"; }
  // Who ended a cancelled call: the server at its drain deadline, or the client.
  const char* CancelReason() const {
    return svc_->cutting_ ? "cut by the server at the end of its drain" : "cancelled by the client";
  }

  DatasetServiceImpl* svc_;
  const Identity* identity_;
  const FairKey fair_key_;  // its turn in the worker pool
  std::vector<std::string> licenses_;
  const std::string peer_;
  const std::chrono::steady_clock::time_point start_;
  absl::Mutex mu_;
  std::atomic<bool> stopping_{false};  // read by workers without mu_
  StreamSettings settings_;  // set in the constructor, then read-only
  std::optional<StreamPlan> plan_;  // set once in the constructor, then read-only
  std::vector<std::string> removed_by_policy_;
  uint64_t next_begin_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t end_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t write_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, Chunk> chunks_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<v1::InstanceBatch> in_flight_ ABSL_GUARDED_BY(mu_);
  int pending_tasks_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool first_message_ ABSL_GUARDED_BY(mu_) = true;
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  uint64_t built_bytes_ ABSL_GUARDED_BY(mu_) = 0;      // of chunks built so far
  uint64_t built_instances_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t sent_instances_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t sent_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

DatasetServiceImpl::DatasetServiceImpl(const Dataset* dataset, WorkerPool* pool, Metrics* metrics,
                                       ServiceOptions options)
    : dataset_(dataset), pool_(pool), metrics_(metrics), options_(std::move(options)) {}

grpc::ServerUnaryReactor* DatasetServiceImpl::FinishUnary(grpc::CallbackServerContext* ctx,
                                                          const absl::Status& s) {
  if (!s.ok()) metrics_->Error(CodeName(s.code()));
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

absl::Status DatasetServiceImpl::Authenticate(grpc::CallbackServerContext* ctx,
                                              const Identity** identity) const {
  *identity = nullptr;
  if (!options_.tokens) return absl::OkStatus();
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return absl::UnauthenticatedError(
        "missing bearer token: send metadata 'authorization: Bearer <token>'");
  }
  absl::string_view token = BearerToken(absl::string_view(it->second.data(), it->second.size()));
  *identity = options_.tokens->Authenticate(token);
  if (*identity == nullptr) return absl::UnauthenticatedError("unknown bearer token");
  return absl::OkStatus();
}

bool DatasetServiceImpl::AcquireIdentityStream(const Identity* identity) {
  if (identity == nullptr) return true;
  std::lock_guard<std::mutex> lock(identity_mu_);
  int& n = identity_streams_[identity->name];
  if (identity->max_streams > 0 && n >= identity->max_streams) return false;
  ++n;
  return true;
}

void DatasetServiceImpl::ReleaseIdentityStream(const Identity* identity) {
  if (identity == nullptr) return;
  std::lock_guard<std::mutex> lock(identity_mu_);
  --identity_streams_[identity->name];
}

grpc::ServerUnaryReactor* DatasetServiceImpl::GetCatalog(grpc::CallbackServerContext* ctx,
                                                         const v1::GetCatalogRequest*,
                                                         v1::Catalog* response) {
  const Identity* identity;
  absl::Status s = Authenticate(ctx, &identity);
  if (s.ok()) ToProto(*dataset_, identity ? &identity->entitlement : nullptr, response);
  return FinishUnary(ctx, s);
}

grpc::ServerUnaryReactor* DatasetServiceImpl::Count(grpc::CallbackServerContext* ctx,
                                                    const v1::CountRequest* request,
                                                    v1::CountResponse* response) {
  SelectionSpec spec;
  const Identity* identity;
  absl::Status s = Authenticate(ctx, &identity);
  if (s.ok()) s = FromProto(request->selection(), &spec);
  if (s.ok()) {
    auto sel = dataset_->Resolve(spec, identity ? &identity->entitlement : nullptr,
                                 identity ? identity->name : "");
    if (sel.ok()) ToProto(*sel, response);
    s = sel.status();
  }
  return FinishUnary(ctx, s);
}

grpc::ServerWriteReactor<v1::InstanceBatch>* DatasetServiceImpl::StreamInstances(
    grpc::CallbackServerContext* ctx, const v1::StreamRequest* request) {
  if (draining_) {
    return new RejectedStream(ctx, "-", grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                                     "the server is shutting down; use another replica"));
  }
  const Identity* identity;
  if (absl::Status s = Authenticate(ctx, &identity); !s.ok()) {
    metrics_->Error(CodeName(s.code()));
    return new RejectedStream(ctx, "-", ToGrpcStatus(s));
  }
  if (active_streams_.fetch_add(1) >= options_.max_streams) {
    active_streams_--;
    metrics_->Error("RESOURCE_EXHAUSTED");
    return new RejectedStream(ctx, identity ? identity->name : "-", grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("the server is serving its maximum of ", options_.max_streams,
                     " concurrent streams; retry later or use another replica")));
  }
  if (!AcquireIdentityStream(identity)) {
    active_streams_--;
    metrics_->Error("RESOURCE_EXHAUSTED");
    return new RejectedStream(ctx, identity->name, grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("identity '", identity->name, "' already has its maximum of ",
                     identity->max_streams, " concurrent streams")));
  }
  return new StreamReactor(this, ctx, request, identity);
}

grpc::ServerUnaryReactor* DatasetServiceImpl::Plan(grpc::CallbackServerContext* ctx,
                                                   const v1::StreamRequest* request,
                                                   v1::PlanResponse* response) {
  const Identity* identity;
  absl::Status s = Authenticate(ctx, &identity);
  if (s.ok()) {
    StreamCaller caller;
    if (identity != nullptr) caller = {&identity->entitlement, identity->name};
    StreamSetup setup;
    s = SetUpStream(*request, *dataset_, options_.limits, caller, options_.token_key, &setup);
    if (s.ok()) {
      ToProto(setup, response);
      response->set_dataset_version(dataset_->version());
    }
  }
  return FinishUnary(ctx, s);
}

// A GetInstances call: its response's bytes count against the server's
// budget from before they are built until gRPC is done with them.
class GetReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit GetReactor(std::atomic<int64_t>* budget_used) : used_(budget_used) {}
  // Hold `bytes` of the budget from now on (replacing what was held).
  void Hold(int64_t bytes) {
    *used_ += bytes - held_;
    held_ = bytes;
  }
  void OnDone() override {
    *used_ -= held_;
    delete this;
  }

 private:
  std::atomic<int64_t>* used_;
  int64_t held_ = 0;
};

grpc::ServerUnaryReactor* DatasetServiceImpl::GetInstances(grpc::CallbackServerContext* ctx,
                                                           const v1::GetInstancesRequest* request,
                                                           v1::GetInstancesResponse* response) {
  auto* reactor = new GetReactor(&prefetched_bytes_);
  const Identity* identity;
  if (absl::Status s = Authenticate(ctx, &identity); !s.ok()) {
    metrics_->Error(CodeName(s.code()));
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  // Responses still waiting for their clients hold the budget: past it (with
  // room for one more largest response) new lookups are turned away as a
  // transient overload, which clients retry.
  if (prefetched_bytes_.load() > options_.prefetch_budget_bytes + static_cast<int64_t>(options_.limits.max_send_bytes())) {
    metrics_->Error("UNAVAILABLE");
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                 "the server's memory budget is in use by responses not yet received; retry"));
    return reactor;
  }
  pool_->Submit(pool_->OneOffKey(identity ? identity->name : ""), [this, request, response, reactor, identity,
                                                                   peer = ctx->peer()] {
    std::set<std::string> licenses;
    absl::Status s = [&]() -> absl::Status {
      GetSettings get;
      M3SERVE_RETURN_IF_ERROR(FromProto(*request, options_.limits, &get));
      const LicensePolicy* entitlement = identity ? &identity->entitlement : nullptr;
      for (size_t i = 0; i < get.keys.size(); ++i) {
        const std::string& task = get.keys[i].first.task;
        M3SERVE_RETURN_IF_ERROR(dataset_->CheckTaskAllowed(task, entitlement, identity ? identity->name : "",
                                                           absl::StrCat("ids[", i, "]")));
        if (const storage::TaskInfo* t = dataset_->Task(task)) licenses.insert(t->license);
      }
      // Reserved before the work, corrected to the response's size once built.
      reactor->Hold(static_cast<int64_t>(std::min<uint64_t>(
          get.keys.size() * EstimateInstanceBytes(get.build), options_.limits.max_send_bytes())));
      auto got = dataset_->store().MultiGetInstances(get.keys);
      uint64_t bytes = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        if (!got[i].ok()) {
          absl::Status e = got[i].status();
          return absl::Status(e.code(), absl::StrCat("ids[", i, "]: ", e.message()));
        }
        v1::Instance* x = response->add_instances();
        M3SERVE_RETURN_IF_ERROR(BuildInstance(*dataset_, *got[i], get.build, metrics_, x));
        bytes += x->ByteSizeLong() + 8;
        if (bytes > options_.limits.max_send_bytes()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "ids: the response passes the largest message the server sends (", options_.limits.max_send_bytes(),
              " bytes, --max-message-bytes) at ids[", i, "]; ask for fewer ids per call or smaller images"));
        }
      }
      reactor->Hold(static_cast<int64_t>(bytes));
      return absl::OkStatus();
    }();
    if (!s.ok()) {
      metrics_->Error(CodeName(s.code()));
      response->Clear();
      reactor->Hold(0);
    }
    // The audit line of a lookup, like a stream's.
    M3_LOG(INFO) << "get peer=" << peer << " identity=" << (identity ? identity->name : "-")
                 << " ids=" << request->ids_size() << " licenses=[" << absl::StrJoin(licenses, "|")
                 << "] instances=" << response->instances_size()
                 << " status=" << (s.ok() ? "OK" : s.ToString());
    reactor->Finish(ToGrpcStatus(s));
  });
  return reactor;
}

}  // namespace m3serve::server
