// File: client/dataset_client.h
//
// C++ client of m3serve (the client must outlive the streams it creates).
// One DatasetClient talks to one or more server
// replicas. Streams reconnect on UNAVAILABLE / connection loss (and on
// RESOURCE_EXHAUSTED from a full replica) with backoff, to the next replica,
// continuing from the resume token of the last batch received, so the caller
// sees every instance of its shard exactly once.
//
//   ClientOptions o;
//   o.targets = {"10.0.0.1:50051", "10.0.0.2:50051"};
//   auto client = DatasetClient::Create(o);
//   v1::StreamRequest req;
//   req.mutable_selection()->add_tasks("vqa-v2");
//   auto stream = (*client)->Stream(req);
//   v1::InstanceBatch batch;
//   while (true) {
//     absl::StatusOr<bool> more = stream->Next(&batch);
//     if (!more.ok()) { /* error with the server's code and message */ break; }
//     if (!*more) break;  // end of shard
//     ... batch.instances() ...
//   }
#ifndef M3SERVE_CLIENT_DATASET_CLIENT_H_
#define M3SERVE_CLIENT_DATASET_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "m3serve/v1/dataset.grpc.pb.h"

namespace m3serve::client {

struct ClientOptions {
  // Server addresses ("host:port"). Required.
  std::vector<std::string> targets;
  // Deadline of unary calls (GetCatalog, Count, GetInstances). Default 30 s.
  absl::Duration unary_deadline = absl::Seconds(30);
  // A stream gives up after this many consecutive failed attempts that
  // delivered nothing. Default 30.
  int max_attempts = 30;
  // Backoff between attempts: doubles from initial to max. Defaults 100 ms, 2 s.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  // Largest message accepted. Default 128 MiB.
  int max_receive_message_bytes = 128 << 20;
  // Channel credentials; default insecure. See TlsCredentials().
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Bearer token sent as "authorization: Bearer <token>" on every call.
  std::string token;
};

// TLS channel credentials from PEM files: the CA that signed the server's
// certificate, and (for mTLS) this client's certificate chain and key.
// InvalidArgument naming the file that cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> TlsCredentials(
    const std::string& ca_file, const std::string& cert_file = "", const std::string& key_file = "");

// Convert a gRPC status to absl::Status (same code, same message).
absl::Status FromGrpcStatus(const grpc::Status& s);

class InstanceStream {
 public:
  ~InstanceStream();
  // The next batch: true with *batch set, false at the end of the shard (or
  // the request's limit), or the error that ended the stream (not retryable,
  // or attempts exhausted). Not thread-safe.
  absl::StatusOr<bool> Next(v1::InstanceBatch* batch);
  // Token that resumes right after the last batch Next() returned ("" before
  // the first batch: the request's own token).
  const std::string& resume_token() const { return token_; }
  // Instances delivered so far.
  uint64_t received() const { return received_; }
  // Times the stream reconnected.
  int reconnects() const { return reconnects_; }
  // Cancel the call in progress (thread-safe); Next() then returns CANCELLED.
  void Cancel();

 private:
  friend class DatasetClient;
  InstanceStream(class DatasetClient* client, v1::StreamRequest request);
  void StartCall();

  DatasetClient* client_;
  v1::StreamRequest request_;
  const uint64_t limit_;
  std::string token_;
  uint64_t received_ = 0;
  int reconnects_ = 0;
  int failures_ = 0;
  size_t target_ = 0;
  bool cancelled_ = false;
  std::mutex mu_;  // guards context_ for Cancel()
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReader<v1::InstanceBatch>> reader_;
};

class DatasetClient {
 public:
  // InvalidArgument when no target is given.
  static absl::StatusOr<std::unique_ptr<DatasetClient>> Create(ClientOptions options);

  absl::StatusOr<v1::Catalog> GetCatalog();
  absl::StatusOr<v1::CountResponse> Count(const v1::Selection& selection);
  absl::StatusOr<v1::GetInstancesResponse> GetInstances(const v1::GetInstancesRequest& request);
  // What Stream(request) would serve: plan fingerprint, epoch size, mixture
  // components with their shares and repeats, instances of the view.
  absl::StatusOr<v1::PlanResponse> Plan(const v1::StreamRequest& request);
  // Per source dataset of a selection (or a mixture's epoch): license,
  // commercial use, instances, images, samples; the report in request.format.
  absl::StatusOr<v1::AttributionResponse> Attribution(const v1::AttributionRequest& request);
  // Start streaming `request` (no call is made until the first Next()).
  std::unique_ptr<InstanceStream> Stream(v1::StreamRequest request);

  const ClientOptions& options() const { return options_; }

 private:
  friend class InstanceStream;
  explicit DatasetClient(ClientOptions options);
  v1::DatasetService::Stub* stub(size_t i) { return stubs_[i % stubs_.size()].get(); }
  void Prepare(grpc::ClientContext* ctx) const;
  // Run a unary call on each target in turn while it is UNAVAILABLE.
  template <typename Fn>
  absl::Status Unary(Fn&& call);
  // One unary method through Unary().
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(
      grpc::Status (v1::DatasetService::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
      const Request& request);

  ClientOptions options_;
  std::vector<std::unique_ptr<v1::DatasetService::Stub>> stubs_;
  std::atomic<size_t> next_target_{0};
};

}  // namespace m3serve::client

#endif  // M3SERVE_CLIENT_DATASET_CLIENT_H_
