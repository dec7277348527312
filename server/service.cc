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
#include "server/batch_producer.h"
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
  if (s.held_out == SelectionSpec::HeldOut::kExclude) absl::StrAppend(&out, " held_out=exclude");
  if (s.held_out == SelectionSpec::HeldOut::kOnly) absl::StrAppend(&out, " held_out=only");
  if (s.exclude_eval_images) absl::StrAppend(&out, " exclude_eval_images");
  add("eval_splits", s.eval_splits);
  add("eval_tasks", s.eval_tasks);
  return out.empty() ? " (everything)" : out;
}

}  // namespace

// One StreamInstances call: gRPC glue around the stream's BatchProducer. The
// producer builds messages on the worker pool; the reactor writes them in
// order, one write in flight, pulling the next when a write completes or when
// the producer wakes it.
class StreamReactor final : public grpc::ServerWriteReactor<v1::InstanceBatch> {
 public:
  StreamReactor(DatasetServiceImpl* svc, grpc::CallbackServerContext* ctx, const v1::StreamRequest* req,
                const Identity* identity)
      : svc_(svc), identity_(identity), peer_(ctx->peer()), start_(std::chrono::steady_clock::now()) {
    svc_->metrics_->StreamStarted();
    {
      std::lock_guard<std::mutex> lock(svc_->streams_mu_);
      svc_->streams_.insert(this);
    }
    {
      absl::MutexLock lock(&mu_);
      absl::Status s = Setup(*req, FairKey{identity ? identity->name : "", svc->next_stream_id_++});
      if (!s.ok()) {
        FinishLocked(s);
        return;
      }
    }
    producer_->Start([this] { OnReady(); });
    OnReady();  // an empty stream ends here
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
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    if (!writing_) FinishLocked(absl::CancelledError(CancelReason()));
  }

  void OnDone() override {
    {
      std::lock_guard<std::mutex> streams_lock(svc_->streams_mu_);
      svc_->streams_.erase(this);
      absl::MutexLock lock(&mu_);
      done_ = true;
      if (!audited_) AuditLocked(final_status_);
    }
    if (producer_) {
      producer_->Detach();  // no wake reaches this reactor from now on
      producer_->Cancel();  // its tasks stop; it goes when the last one ends
    }
    svc_->metrics_->StreamEnded();
    svc_->ReleaseIdentityStream(identity_);
    // The last stream gone: give the heap's free memory back to the OS once
    // this reactor's own is freed too (its producer trims again if its tasks
    // outlive it).
    const bool last = --svc_->active_streams_ == 0;
    delete this;
    if (last) malloc_trim(0);
  }

  // The teardown limit is reached before this stream is done (the caller
  // holds the service's streams_mu_).
  void AuditCut() {
    absl::MutexLock lock(&mu_);
    if (audited_) return;
    // A stream that has its status already (gRPC has not finished sending it)
    // is audited with that status.
    AuditLocked(finish_called_ ? final_status_
                               : absl::CancelledError("cut by the server at the end of its drain"));
  }

 private:
  // The audit line: who asked for what and received how much of which
  // licenses. One per stream.
  void AuditLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    audited_ = true;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    M3_LOG(INFO) << "stream end peer=" << peer_ << " identity=" << IdentityName()
                 << Describe(settings_.selection) << " licenses=[" << absl::StrJoin(licenses_, "|")
                 << "] instances=" << sent_instances_ << " bytes=" << sent_bytes_ << " seconds=" << secs
                 << " status=" << (status.ok() ? "OK" : status.ToString());
  }

  absl::Status Setup(const v1::StreamRequest& req, const FairKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    StreamCaller caller;
    if (identity_ != nullptr) caller = {&identity_->entitlement, identity_->name};
    StreamSetup setup;
    absl::Status s = SetUpStream(req, *svc_->dataset_, svc_->options_.limits, caller,
                                 svc_->options_.token_key, &setup);
    settings_ = std::move(setup.settings);
    if (!s.ok()) return s;
    removed_by_policy_ = std::move(setup.removed_by_policy);
    licenses_ = std::move(setup.licenses);
    auto plan = std::make_shared<const StreamPlan>(std::move(*setup.plan));
    M3_LOG(INFO) << "stream start peer=" << peer_ << " identity=" << IdentityName() << Describe(settings_.selection)
                 << " view=[" << DescribeView(settings_.plan) << "]" << " plan=" << plan->fingerprint()
                 << (settings_.plan.order.shuffled ? absl::StrCat(" shuffled seed=", settings_.plan.order.seed) : " sequential")
                 << " epoch=" << settings_.plan.order.epoch << " from=" << setup.begin << " to=" << setup.end
                 << " of " << plan->shard_size();
    ProducerOptions po;
    po.build = settings_.build;
    po.batch_size = settings_.batch_size;
    po.message_bytes = settings_.message_bytes;
    po.max_send_bytes = svc_->options_.limits.max_send_bytes();
    po.prefetch_chunks = svc_->options_.prefetch_batches;
    WorkerPool* pool = svc_->pool_;
    producer_ = BatchProducer::Create(
        svc_->dataset_, std::move(plan), setup.begin, setup.end, std::move(po), &svc_->budget_,
        [pool, key](std::function<void()> task) { pool->Submit(key, std::move(task)); }, svc_->metrics_);
    return absl::OkStatus();
  }

  // The producer has something new (worker thread).
  void OnReady() {
    absl::MutexLock lock(&mu_);
    if (!done_) WriteNextLocked();
  }

  // Write the next message if none is in flight; finish at the end.
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finish_called_) return;
    if (cancelled_) {
      FinishLocked(absl::CancelledError(CancelReason()));
      return;
    }
    absl::Status status;
    switch (producer_->Pull(&in_flight_, &status)) {
      case BatchProducer::Pulled::kWait:
        return;
      case BatchProducer::Pulled::kEnd:
        FinishLocked(absl::OkStatus());
        return;
      case BatchProducer::Pulled::kFailed:
        FinishLocked(status);
        return;
      case BatchProducer::Pulled::kMessage:
        break;
    }
    if (first_message_) {
      for (const auto& t : removed_by_policy_) in_flight_->add_removed_by_policy(t);
      first_message_ = false;
    }
    writing_ = true;
    StartWrite(in_flight_.get());
  }

  void FinishLocked(const absl::Status& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_called_) return;
    finish_called_ = true;
    if (producer_) producer_->Cancel();  // no more work, the budget goes back
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
  const std::string peer_;
  const std::chrono::steady_clock::time_point start_;
  absl::Mutex mu_;
  // Set in the constructor, then read-only.
  StreamSettings settings_;
  std::vector<std::string> licenses_;
  std::vector<std::string> removed_by_policy_;
  std::shared_ptr<BatchProducer> producer_;
  std::unique_ptr<v1::InstanceBatch> in_flight_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool audited_ ABSL_GUARDED_BY(mu_) = false;
  bool first_message_ ABSL_GUARDED_BY(mu_) = true;
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  uint64_t sent_instances_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t sent_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

DatasetServiceImpl::DatasetServiceImpl(const Dataset* dataset, WorkerPool* pool, Metrics* metrics,
                                       ServiceOptions options)
    : dataset_(dataset), pool_(pool), metrics_(metrics), options_(std::move(options)),
      budget_(options_.prefetch_budget_bytes) {}

void DatasetServiceImpl::AuditUnfinishedStreams() {
  std::lock_guard<std::mutex> lock(streams_mu_);
  for (StreamReactor* r : streams_) r->AuditCut();
}

grpc::ServerUnaryReactor* DatasetServiceImpl::FinishUnary(grpc::CallbackServerContext* ctx,
                                                          const absl::Status& s) {
  if (!s.ok()) metrics_->Error(CodeName(s.code()));
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

absl::Status DatasetServiceImpl::Authenticate(grpc::CallbackServerContext* ctx,
                                              const Identity** identity) const {
  std::optional<absl::string_view> authorization;
  const auto& md = ctx->client_metadata();
  if (auto it = md.find("authorization"); it != md.end()) {
    authorization = absl::string_view(it->second.data(), it->second.size());
  }
  absl::StatusOr<const Identity*> who = AuthenticateCall(options_.tokens.get(), authorization);
  *identity = who.ok() ? *who : nullptr;
  return who.status();
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
  if (s.ok()) s = ToProto(*dataset_, identity ? &identity->entitlement : nullptr, response);
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

grpc::ServerUnaryReactor* DatasetServiceImpl::Attribution(grpc::CallbackServerContext* ctx,
                                                          const v1::AttributionRequest* request,
                                                          v1::AttributionResponse* response) {
  const Identity* identity;
  absl::Status s = Authenticate(ctx, &identity);
  ReportFormat format = ReportFormat::kText;
  if (s.ok()) s = FromProto(request->format(), &format);
  auto setup = std::make_shared<StreamSetup>();
  if (s.ok()) {
    StreamCaller caller;
    if (identity != nullptr) caller = {&identity->entitlement, identity->name};
    // The epoch a stream of this selection and mixture would draw.
    v1::StreamRequest stream;
    *stream.mutable_selection() = request->selection();
    *stream.mutable_mixture() = request->mixture();
    s = SetUpStream(stream, *dataset_, options_.limits, caller, options_.token_key, setup.get());
  }
  if (!s.ok()) return FinishUnary(ctx, s);
  // The report is built on the worker pool, never in a reaction, and one at a
  // time: each holds two per-image counters (8 bytes per image of the store),
  // so concurrent calls queue instead of multiplying that memory.
  auto* reactor = ctx->DefaultReactor();
  auto job = [this, setup, format, response, reactor] {
    absl::StatusOr<AttributionReport> report = BuildAttribution(*dataset_, setup->plan->order());
    absl::Status status = report.status();
    if (status.ok()) {
      report->removed_by_policy = setup->removed_by_policy;
      ToProto(*report, format, response);
    } else {
      metrics_->Error(CodeName(status.code()));
    }
    reactor->Finish(ToGrpcStatus(status));
  };
  {
    std::lock_guard<std::mutex> lock(attribution_mu_);
    if (attribution_pending_.size() >= kMaxPendingAttributions) {
      metrics_->Error("RESOURCE_EXHAUSTED");
      reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   absl::StrCat(kMaxPendingAttributions,
                                                " attribution reports are already waiting; retry later")));
      return reactor;
    }
    attribution_pending_.push_back(std::move(job));
    if (attribution_running_) return reactor;  // the running one starts the next
    attribution_running_ = true;
  }
  RunNextAttribution(identity ? identity->name : "");
  return reactor;
}

void DatasetServiceImpl::RunNextAttribution(const std::string& identity) {
  std::function<void()> job;
  {
    std::lock_guard<std::mutex> lock(attribution_mu_);
    if (attribution_pending_.empty()) {
      attribution_running_ = false;
      return;
    }
    job = std::move(attribution_pending_.front());
    attribution_pending_.pop_front();
  }
  pool_->Submit(pool_->OneOffKey(identity), [this, job = std::move(job)] {
    job();
    RunNextAttribution("");
  });
}

// A GetInstances call: its response's bytes count against the server's
// budget from before they are built until gRPC is done with them.
class GetReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit GetReactor(ServingBudget* budget) : budget_(budget) {}
  // Hold `bytes` of the budget from now on (replacing what was held).
  void Hold(int64_t bytes) {
    budget_->Add(bytes - held_);
    held_ = bytes;
  }
  void OnDone() override {
    budget_->Add(-held_);
    delete this;
  }

 private:
  ServingBudget* budget_;
  int64_t held_ = 0;
};

grpc::ServerUnaryReactor* DatasetServiceImpl::GetInstances(grpc::CallbackServerContext* ctx,
                                                           const v1::GetInstancesRequest* request,
                                                           v1::GetInstancesResponse* response) {
  auto* reactor = new GetReactor(&budget_);
  const Identity* identity;
  if (absl::Status s = Authenticate(ctx, &identity); !s.ok()) {
    metrics_->Error(CodeName(s.code()));
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  // Responses still waiting for their clients hold the budget: past it (with
  // room for one more largest response) new lookups are turned away as a
  // transient overload, which clients retry.
  if (budget_.used() > budget_.limit() + static_cast<int64_t>(options_.limits.max_send_bytes())) {
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
      if (get.selection) {
        M3SERVE_ASSIGN_OR_RETURN(ResolvedSelection sel, dataset_->Resolve(*get.selection, entitlement,
                                                                          identity ? identity->name : ""));
        for (size_t i = 0; i < get.keys.size(); ++i) {
          if (std::string why = sel.WhyNot(get.keys[i].first, get.keys[i].second); !why.empty()) {
            return absl::FailedPreconditionError(absl::StrCat(
                "ids[", i, "]: instance ", request->ids(static_cast<int>(i)), " is not in the request's selection: ",
                why));
          }
        }
      }
      // Reserved before the work, corrected to the response's size once built.
      reactor->Hold(static_cast<int64_t>(std::min<uint64_t>(
          get.keys.size() * EstimateInstanceBytes(get.build), options_.limits.max_send_bytes())));
      auto got = dataset_->reader().MultiGetInstances(get.keys);
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
