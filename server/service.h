// File: server/service.h
//
// The gRPC service (callback API). Streams are ServerWriteReactors: a slow
// client slows only its own stream (the next batch is produced only when the
// window allows and written only after the previous write completed), no
// thread is held per stream, and all RocksDB reads and image decoding run on
// the WorkerPool, never inside a reaction.
#ifndef M3SERVE_SERVER_SERVICE_H_
#define M3SERVE_SERVER_SERVICE_H_

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <cstdint>
#include <string>

#include "m3serve/v1/dataset.grpc.pb.h"
#include "server/auth.h"
#include "server/dataset.h"
#include "server/metrics.h"
#include "server/proto_convert.h"
#include "server/serving_budget.h"
#include "server/worker_pool.h"

namespace m3serve::server {

struct ServiceOptions {
  RequestLimits limits;
  // Concurrent streams; beyond it StreamInstances fails RESOURCE_EXHAUSTED.
  // Default 256.
  int max_streams = 256;
  // Work units (chunks) a stream may prepare ahead of the one being written.
  // Default 2.
  int prefetch_batches = 2;
  // Server-wide byte budget of what streams and lookups hold (every stream
  // may always prepare one chunk). Default 64 MiB.
  int64_t prefetch_budget_bytes = 64ll << 20;
  // Secret that authenticates resume tokens (replicas must share it).
  std::string token_key;
  // Bearer tokens and their identities; null: no authentication.
  std::shared_ptr<const TokenTable> tokens;
};

class StreamReactor;

class DatasetServiceImpl final : public v1::DatasetService::CallbackService {
 public:
  // `dataset`, `pool` and `metrics` must outlive the service.
  DatasetServiceImpl(const Dataset* dataset, WorkerPool* pool, Metrics* metrics, ServiceOptions options);

  grpc::ServerUnaryReactor* GetCatalog(grpc::CallbackServerContext* ctx,
                                       const v1::GetCatalogRequest* request,
                                       v1::Catalog* response) override;
  grpc::ServerUnaryReactor* Count(grpc::CallbackServerContext* ctx, const v1::CountRequest* request,
                                  v1::CountResponse* response) override;
  grpc::ServerWriteReactor<v1::InstanceBatch>* StreamInstances(
      grpc::CallbackServerContext* ctx, const v1::StreamRequest* request) override;
  grpc::ServerUnaryReactor* GetInstances(grpc::CallbackServerContext* ctx,
                                         const v1::GetInstancesRequest* request,
                                         v1::GetInstancesResponse* response) override;
  grpc::ServerUnaryReactor* Plan(grpc::CallbackServerContext* ctx, const v1::StreamRequest* request,
                                 v1::PlanResponse* response) override;
  grpc::ServerUnaryReactor* Attribution(grpc::CallbackServerContext* ctx, const v1::AttributionRequest* request,
                                        v1::AttributionResponse* response) override;

  int active_streams() const { return active_streams_.load(); }
  // Refuse new streams with UNAVAILABLE (clients fail over to another
  // replica); streams in flight continue. Thread-safe.
  void BeginDrain() { draining_ = true; }
  // The drain deadline passed: streams still running are cut by the server
  // (their log lines say so, not "the client stopped").
  void EndDrain() { cutting_ = true; }
  // Write the audit line of every stream that has not ended yet, as cut by
  // the server: for a process that exits before gRPC has finished cancelling
  // them (Server's teardown limit). Those streams log no second line.
  void AuditUnfinishedStreams();

 private:
  friend class StreamReactor;
  grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, const absl::Status& s);
  // The caller's identity (null when tokens are off). UNAUTHENTICATED when
  // tokens are on and the call has no known bearer token.
  absl::Status Authenticate(grpc::CallbackServerContext* ctx, const Identity** identity) const;
  // Count a stream against its identity's limit; false when at the limit.
  bool AcquireIdentityStream(const Identity* identity);
  void ReleaseIdentityStream(const Identity* identity);

  const Dataset* dataset_;
  WorkerPool* pool_;
  Metrics* metrics_;
  ServiceOptions options_;
  std::atomic<int> active_streams_{0};
  std::atomic<bool> draining_{false};
  std::atomic<bool> cutting_{false};
  std::mutex identity_mu_;
  // Attribution reports are built on the worker pool one at a time: each
  // holds two per-image counters (8 bytes per image of the store), so
  // concurrent calls queue (up to kMaxPendingAttributions, then
  // RESOURCE_EXHAUSTED) instead of multiplying that memory; no thread waits.
  static constexpr size_t kMaxPendingAttributions = 64;
  void RunNextAttribution(const std::string& identity);
  std::mutex attribution_mu_;
  std::deque<std::function<void()>> attribution_pending_;
  bool attribution_running_ = false;
  std::map<std::string, int> identity_streams_;
  ServingBudget budget_;
  std::atomic<uint64_t> next_stream_id_{0};
  // Streams not yet done (for AuditUnfinishedStreams). Lock order: streams_mu_
  // before a stream's own mutex.
  std::mutex streams_mu_;
  std::set<StreamReactor*> streams_;
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_SERVICE_H_
