// File: server/server.h
//
// m3serve's server: opens a store read-only, serves DatasetService, the
// standard grpc.health.v1 health service (SERVING once the store is open) and
// server reflection on one port; on an HTTP port, Prometheus metrics and the
// dataset browser with its JSON API (server/http_api.h).
#ifndef M3SERVE_SERVER_SERVER_H_
#define M3SERVE_SERVER_SERVER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/http_api.h"
#include "server/http_listener.h"
#include "server/service.h"
#include "storage/publish.h"

namespace m3serve::server {

struct ServerOptions {
  // Store directory, or a publish root (storage/publish.h: its current
  // version is opened and kept). Opened read-only. Required.
  std::string db;
  // How often the server checks that its store's files are still there (and,
  // under a publish root, refreshes its lease and looks for a newer version).
  // A store whose files are gone turns the health service NOT_SERVING for
  // good. Zero: no checks (and no lease refresh). Default 5 s.
  absl::Duration store_check_interval = absl::Seconds(5);
  // Under a publish root: the name of this server's lease (default
  // "<hostname>-<pid>").
  std::string lease_holder;
  // gRPC address. Port 0 picks a free port (see port()). Default 0.0.0.0:50051.
  std::string listen = "0.0.0.0:50051";
  // HTTP address (/metrics, and the browser when `browser`); empty disables.
  // Default 0.0.0.0:9464.
  std::string http_listen = "0.0.0.0:9464";
  // Serve the dataset browser page and /api/ on the HTTP address.
  bool browser = true;
  // HTTP connection threads.
  int http_threads = 8;
  // Memory for the browser's cached thumbnails.
  uint64_t thumbnail_cache_bytes = 64ull << 20;
  // License policy file (see policy.h); empty: serve every task.
  std::string policy_file;
  // File with the secret that authenticates resume tokens. Empty: a key
  // derived from the dataset version (tokens are then checked for integrity
  // but can be forged by anyone who knows the version).
  std::string token_key_file;
  // TLS: server certificate chain and key (PEM). Both empty: plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  // mTLS: CA (PEM) that client certificates must chain to; empty: no client
  // certificates asked for.
  std::string tls_client_ca_file;
  // Bearer tokens and identities (see auth.h); empty: no authentication.
  std::string tokens_file;
  // Worker threads for reads and decoding. Default 0: one per core.
  int workers = 0;
  // RocksDB block cache. Default 256 MiB.
  uint64_t block_cache_bytes = 256ull << 20;
  // Largest request message accepted. Default 4 MiB.
  int max_receive_message_bytes = 4 << 20;
  ServiceOptions service;
  // Called when gRPC has not finished the calls it cancels within
  // `teardown_limit` of the drain deadline (a client that stopped reading can
  // keep a write pending; under load gRPC has taken seconds to complete it).
  // Before the call, every stream not yet ended gets its audit line. The
  // server binary exits there: its store is read-only, so nothing is lost.
  // Unset: Shutdown waits for gRPC however long it takes.
  std::function<void()> on_teardown_overrun;
  absl::Duration teardown_limit = absl::Milliseconds(600);
};

class Server {
 public:
  // Open the store, bind the ports and start serving. Errors: those of
  // Store::Open and LoadPolicy; Unavailable when a port cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options);
  ~Server();

  int port() const { return port_; }
  // The HTTP port (/metrics, browser), or 0 when off.
  int http_port() const;
  const Dataset& dataset() const { return *dataset_; }

  // Report NOT_SERVING, stop accepting calls, let in-flight calls finish until
  // `deadline` (then cancel them), and stop. Idempotent.
  void Shutdown(absl::Duration deadline);
  // Block until Shutdown() completes.
  void Wait();

 private:
  Server() = default;
  ServerOptions options_;
  std::unique_ptr<Dataset> dataset_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<HttpApi> http_api_;
  std::unique_ptr<HttpListener> http_;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<DatasetServiceImpl> service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  bool shut_down_ = false;
  // The store watch (see ServerOptions::store_check_interval).
  void WatchStore();
  storage::ResolvedStore resolved_;
  std::optional<storage::Lease> lease_;
  std::thread watch_;
  absl::Mutex watch_mu_;
  bool watch_stop_ ABSL_GUARDED_BY(watch_mu_) = false;
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_SERVER_H_
