#include "server/server.h"

#include <malloc.h>

#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <opencv2/core.hpp>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace m3serve::server {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  std::unique_ptr<Server> s(new Server());
  s->options_ = std::move(options);
  ServerOptions& o = s->options_;
  if (o.db.empty()) return absl::InvalidArgumentError("--db is required");
  // Parallelism comes from the worker pool; OpenCV must not add its own.
  cv::setNumThreads(1);

  LicensePolicy policy;
  if (!o.policy_file.empty()) {
    M3SERVE_ASSIGN_OR_RETURN(policy, LoadPolicy(o.policy_file));
  }
  storage::StoreOptions so;
  so.read_only = true;
  so.block_cache_bytes = o.block_cache_bytes;
  // A publish root resolves to its current version, which this server keeps
  // for its lifetime (a lease tells `m3serve-admin publish` not to remove it).
  M3SERVE_ASSIGN_OR_RETURN(s->resolved_, storage::ResolveStore(o.db));
  M3SERVE_ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> store, storage::OpenResolved(s->resolved_, so));
  M3SERVE_ASSIGN_OR_RETURN(s->dataset_, Dataset::Open(std::move(store), std::move(policy)));
  if (!s->resolved_.root.empty()) {
    const std::string holder = o.lease_holder.empty() ? storage::DefaultLeaseHolder() : o.lease_holder;
    absl::StatusOr<storage::Lease> lease = storage::Lease::Acquire(s->resolved_.root, holder, s->resolved_.version);
    if (lease.ok()) {
      s->lease_ = std::move(*lease);
      M3_LOG(INFO) << "publish root " << s->resolved_.root << ": serving version " << s->resolved_.version
                   << ", lease " << s->lease_->path();
    } else if (absl::IsInvalidArgument(lease.status())) {
      return lease.status();
    } else {
      M3_LOG(WARNING) << "publish root " << s->resolved_.root << ": serving version " << s->resolved_.version
                      << " without a lease (" << lease.status().message()
                      << "); a publish may remove this version while it is served: mount "
                      << s->resolved_.root << "/" << storage::kLeasesDir << " writable";
    }
  }

  if (!o.token_key_file.empty()) {
    std::ifstream f(o.token_key_file, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    if (!f || ss.str().size() < 16) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--token-key-file ", o.token_key_file, ": cannot read it, or it has fewer than 16 bytes"));
    }
    o.service.token_key = ss.str();
  } else if (o.service.token_key.empty()) {
    o.service.token_key = absl::StrCat("m3serve-resume-token|", s->dataset_->version());
  }

  if (!o.tokens_file.empty()) {
    M3SERVE_ASSIGN_OR_RETURN(TokenTable tokens, TokenTable::Load(o.tokens_file));
    o.service.tokens = std::make_shared<const TokenTable>(std::move(tokens));
  }
  // Catalogs seen through the policy or a token count only the images of the
  // tasks they show: scan for the image census now, before serving, when some
  // view is narrower than the store.
  bool narrowed = !s->dataset_->AdmitsAll(nullptr);
  if (o.service.tokens) {
    o.service.tokens->ForEachIdentity([&](const Identity& id) {
      narrowed = narrowed || !s->dataset_->AdmitsAll(&id.entitlement);
    });
  }
  if (narrowed) {
    const auto t0 = absl::Now();
    M3SERVE_RETURN_IF_ERROR(s->dataset_->BuildImageCensus());
    M3_LOG(INFO) << "image census for narrowed catalogs: " << s->dataset_->catalog().TotalInstances()
                 << " instances scanned in " << absl::FormatDuration(absl::Now() - t0);
    malloc_trim(0);
  }
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!o.tls_cert_file.empty() || !o.tls_key_file.empty()) {
    auto read = [](const std::string& path, const char* flag) -> absl::StatusOr<std::string> {
      std::ifstream f(path, std::ios::binary);
      std::stringstream ss;
      ss << f.rdbuf();
      if (!f || ss.str().empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": cannot read it"));
      return ss.str();
    };
    if (o.tls_cert_file.empty() || o.tls_key_file.empty()) {
      return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
    }
    grpc::SslServerCredentialsOptions ssl;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    M3SERVE_ASSIGN_OR_RETURN(pair.cert_chain, read(o.tls_cert_file, "--tls-cert"));
    M3SERVE_ASSIGN_OR_RETURN(pair.private_key, read(o.tls_key_file, "--tls-key"));
    ssl.pem_key_cert_pairs.push_back(std::move(pair));
    if (!o.tls_client_ca_file.empty()) {
      M3SERVE_ASSIGN_OR_RETURN(ssl.pem_root_certs, read(o.tls_client_ca_file, "--tls-client-ca"));
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    credentials = grpc::SslServerCredentials(ssl);
  } else if (!o.tls_client_ca_file.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  }

  s->metrics_ = Metrics::Create();
  const int workers = o.workers > 0 ? o.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  s->pool_ = std::make_unique<WorkerPool>(workers);
  s->service_ = std::make_unique<DatasetServiceImpl>(s->dataset_.get(), s->pool_.get(),
                                                     s->metrics_.get(), o.service);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.listen, credentials, &s->port_);
  builder.RegisterService(s->service_.get());
  builder.SetMaxReceiveMessageSize(o.max_receive_message_bytes);
  builder.SetMaxSendMessageSize(static_cast<int>(o.service.limits.max_send_bytes()));
  s->grpc_server_ = builder.BuildAndStart();
  if (!s->grpc_server_ || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o.listen));
  }
  if (!o.http_listen.empty()) {
    HttpApiOptions http;
    http.browser = o.browser;
    http.limits = o.service.limits;
    http.tokens = o.service.tokens;
    http.thumbnail_cache_bytes = o.thumbnail_cache_bytes;
    http.grpc_port = s->port_;
    s->http_api_ = std::make_unique<HttpApi>(s->dataset_.get(), s->metrics_.get(), std::move(http));
    HttpApi* api = s->http_api_.get();
    M3SERVE_ASSIGN_OR_RETURN(s->http_, HttpListener::Start(o.http_listen, std::max(2, o.http_threads),
                                                           [api](const HttpRequest& r) { return api->Handle(r); }));
  }
  s->grpc_server_->GetHealthCheckService()->SetServingStatus(true);
  s->metrics_->SetStoreState(true, false);
  if (o.store_check_interval > absl::ZeroDuration()) s->watch_ = std::thread([p = s.get()] { p->WatchStore(); });
  M3_LOG(INFO) << "serving " << o.db << " (dataset version " << s->dataset_->version() << ", "
               << s->dataset_->catalog().TotalInstances() << " instances) on port " << s->port_
               << ", HTTP on port " << s->http_port() << (o.browser ? " (metrics, browser)" : " (metrics)")
               << ", " << workers << " workers"
               << (o.tls_cert_file.empty() ? ", plaintext" : (o.tls_client_ca_file.empty() ? ", TLS" : ", mTLS"))
               << (o.service.tokens ? absl::StrCat(", ", o.service.tokens->size(), " tokens") : ", no tokens");
  return s;
}

Server::~Server() {
  Shutdown(absl::ZeroDuration());
  // Stopping civetweb waits out its 2 s poll quantum, which would push the
  // exit past the drain deadline. Once closed, the listener answers 503
  // without touching the dataset or the metrics, so keep it (reachable, so no
  // leak) until the process exits, which ends it.
  if (http_) {
    http_->Close();
    static std::vector<std::unique_ptr<HttpListener>>* const kept_until_exit =
        new std::vector<std::unique_ptr<HttpListener>>;
    kept_until_exit->push_back(std::move(http_));
  }
}

int Server::http_port() const { return http_ ? http_->port() : 0; }

void Server::WatchStore() {
  bool failed = false, outdated = false;
  absl::MutexLock lock(&watch_mu_);
  while (!watch_mu_.AwaitWithTimeout(absl::Condition(&watch_stop_), options_.store_check_interval)) {
    watch_mu_.Unlock();
    if (!failed) {
      if (absl::Status s = dataset_->CheckStoreFiles(); !s.ok()) {
        // Streams of this store would fail from now on: leave the endpoints
        // and fail the probes, so the pod is replaced (by one that opens the
        // current version).
        failed = true;
        grpc_server_->GetHealthCheckService()->SetServingStatus(false);
        M3_LOG(ERROR) << "the store " << resolved_.store << " is no longer whole (" << s.message()
                      << "): reporting NOT_SERVING";
      }
    }
    if (lease_) {
      if (absl::Status s = lease_->Refresh(); !s.ok()) M3_LOG(WARNING) << s.message();
    }
    if (!resolved_.root.empty() && !outdated) {
      absl::StatusOr<storage::ResolvedStore> now = storage::ResolveStore(resolved_.root);
      if (now.ok() && now->version != resolved_.version) {
        outdated = true;
        M3_LOG(INFO) << "version " << now->version << " is published; this server keeps serving "
                     << resolved_.version << " until it is restarted (a rolling restart moves every replica)";
      }
    }
    metrics_->SetStoreState(!failed, outdated);
    watch_mu_.Lock();
  }
}

void Server::Shutdown(absl::Duration deadline) {
  if (shut_down_ || !grpc_server_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&watch_mu_);
    watch_stop_ = true;
  }
  if (watch_.joinable()) watch_.join();
  // Drain: report NOT_SERVING, refuse new streams, let those in flight finish.
  grpc_server_->GetHealthCheckService()->SetServingStatus(false);
  service_->BeginDrain();
  const absl::Time end = absl::Now() + deadline;
  while (service_->active_streams() > 0 && absl::Now() < end) absl::SleepFor(absl::Milliseconds(20));
  if (service_->active_streams() > 0) {
    M3_LOG(WARNING) << service_->active_streams() << " streams still running after the drain deadline; cancelling them";
  }
  service_->EndDrain();
  // The teardown limit runs on its own thread: gRPC's Shutdown below blocks
  // until every cancelled call is complete.
  absl::Notification stopped;
  std::thread overrun;
  if (options_.on_teardown_overrun) {
    overrun = std::thread([this, &stopped] {
      if (stopped.WaitForNotificationWithTimeout(options_.teardown_limit)) return;
      M3_LOG(WARNING) << "gRPC has not completed the calls it cancels "
                      << absl::FormatDuration(options_.teardown_limit)
                      << " after the drain deadline (--teardown-ms); ending now";
      service_->AuditUnfinishedStreams();
      options_.on_teardown_overrun();
    });
  }
  // Whatever is left (unary calls, late streams) gets a short grace period.
  grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  grpc_server_->Wait();
  stopped.Notify();
  if (overrun.joinable()) overrun.join();
  // Reactors are gone; let the worker pool finish what they left queued.
  pool_.reset();
}

void Server::Wait() {
  if (grpc_server_) grpc_server_->Wait();
}

}  // namespace m3serve::server
