#include "client/dataset_client.h"

#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace m3serve::client {
namespace {

bool Retryable(grpc::StatusCode c) {
  return c == grpc::StatusCode::UNAVAILABLE || c == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         c == grpc::StatusCode::ABORTED;
}

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return std::chrono::system_clock::now() +
         std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> TlsCredentials(const std::string& ca_file,
                                                                         const std::string& cert_file,
                                                                         const std::string& key_file) {
  auto read = [](const std::string& path) -> absl::StatusOr<std::string> {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    if (!f || ss.str().empty()) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
    return ss.str();
  };
  grpc::SslCredentialsOptions o;
  if (!ca_file.empty()) {
    auto ca = read(ca_file);
    if (!ca.ok()) return ca.status();
    o.pem_root_certs = *ca;
  }
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError("a client certificate and its key go together");
  }
  if (!cert_file.empty()) {
    auto cert = read(cert_file), key = read(key_file);
    if (!cert.ok()) return cert.status();
    if (!key.ok()) return key.status();
    o.pem_cert_chain = *cert;
    o.pem_private_key = *key;
  }
  return grpc::SslCredentials(o);
}

absl::Status FromGrpcStatus(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// ---------------------------------------------------------------------------

DatasetClient::DatasetClient(ClientOptions options) : options_(std::move(options)) {
  auto creds = options_.credentials ? options_.credentials : grpc::InsecureChannelCredentials();
  for (const auto& t : options_.targets) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(options_.max_receive_message_bytes);
    // Notice a dead server quickly and reconnect fast when it is back.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
    stubs_.push_back(v1::DatasetService::NewStub(grpc::CreateCustomChannel(t, creds, args)));
  }
}

absl::StatusOr<std::unique_ptr<DatasetClient>> DatasetClient::Create(ClientOptions options) {
  if (options.targets.empty()) return absl::InvalidArgumentError("no server target given");
  return std::unique_ptr<DatasetClient>(new DatasetClient(std::move(options)));
}

void DatasetClient::Prepare(grpc::ClientContext* ctx) const {
  if (!options_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + options_.token);
}

template <typename Fn>
absl::Status DatasetClient::Unary(Fn&& call) {
  grpc::Status last;
  const size_t first = next_target_++;
  for (size_t i = 0; i < stubs_.size(); ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(options_.unary_deadline));
    Prepare(&ctx);
    last = call(stub(first + i), &ctx);
    if (last.ok() || last.error_code() != grpc::StatusCode::UNAVAILABLE) break;
  }
  return FromGrpcStatus(last);
}

template <typename Request, typename Response>
absl::StatusOr<Response> DatasetClient::Call(
    grpc::Status (v1::DatasetService::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
    const Request& request) {
  Response out;
  absl::Status s = Unary([&](v1::DatasetService::Stub* stub, grpc::ClientContext* ctx) {
    out.Clear();
    return (stub->*method)(ctx, request, &out);
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::Catalog> DatasetClient::GetCatalog() {
  return Call(&v1::DatasetService::Stub::GetCatalog, v1::GetCatalogRequest());
}

absl::StatusOr<v1::CountResponse> DatasetClient::Count(const v1::Selection& selection) {
  v1::CountRequest req;
  *req.mutable_selection() = selection;
  return Call(&v1::DatasetService::Stub::Count, req);
}

absl::StatusOr<v1::GetInstancesResponse> DatasetClient::GetInstances(
    const v1::GetInstancesRequest& request) {
  return Call(&v1::DatasetService::Stub::GetInstances, request);
}

absl::StatusOr<v1::PlanResponse> DatasetClient::Plan(const v1::StreamRequest& request) {
  return Call(&v1::DatasetService::Stub::Plan, request);
}

absl::StatusOr<v1::AttributionResponse> DatasetClient::Attribution(const v1::AttributionRequest& request) {
  return Call(&v1::DatasetService::Stub::Attribution, request);
}

std::unique_ptr<InstanceStream> DatasetClient::Stream(v1::StreamRequest request) {
  return std::unique_ptr<InstanceStream>(new InstanceStream(this, std::move(request)));
}

// ---------------------------------------------------------------------------

InstanceStream::InstanceStream(DatasetClient* client, v1::StreamRequest request)
    : client_(client), request_(std::move(request)), limit_(request_.limit()),
      token_(request_.resume_token()), target_(client->next_target_++) {}

InstanceStream::~InstanceStream() {
  if (reader_) {
    Cancel();
    reader_->Finish().IgnoreError();
  }
}

void InstanceStream::StartCall() {
  std::lock_guard<std::mutex> lock(mu_);
  context_ = std::make_unique<grpc::ClientContext>();
  client_->Prepare(context_.get());
  if (cancelled_) context_->TryCancel();
  reader_ = client_->stub(target_)->StreamInstances(context_.get(), request_);
}

void InstanceStream::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  if (context_) context_->TryCancel();
}

absl::StatusOr<bool> InstanceStream::Next(v1::InstanceBatch* batch) {
  absl::Duration backoff = client_->options().initial_backoff;
  while (true) {
    if (limit_ > 0 && received_ >= limit_) return false;
    if (!reader_) StartCall();
    if (reader_->Read(batch)) {
      received_ += static_cast<uint64_t>(batch->instances_size());
      token_ = batch->resume_token();
      failures_ = 0;
      return true;
    }
    grpc::Status status = reader_->Finish();
    reader_.reset();
    if (status.ok()) return false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cancelled_) return absl::CancelledError("stream cancelled by the caller");
    }
    if (!Retryable(status.error_code()) || ++failures_ >= client_->options().max_attempts) {
      absl::Status s = FromGrpcStatus(status);
      if (failures_ >= client_->options().max_attempts) {
        s = absl::Status(s.code(), absl::StrCat(s.message(), " (gave up after ", failures_, " attempts)"));
      }
      return s;
    }
    // Continue right after the last batch received, on the next replica.
    ++reconnects_;
    std::this_thread::sleep_for(std::chrono::milliseconds(absl::ToInt64Milliseconds(backoff)));
    backoff = std::min(backoff * 2, client_->options().max_backoff);
    ++target_;
    request_.set_resume_token(token_);
    if (limit_ > 0) request_.set_limit(limit_ - received_);
  }
}

}  // namespace m3serve::client
