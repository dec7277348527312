// m3serve-server: serve an m3serve store over gRPC.
//
//   m3serve-server --db DIR [--listen ADDR] [--policy FILE] ...
//
// SIGTERM / SIGINT drain: the health service reports NOT_SERVING, new calls
// are refused, in-flight streams get --drain-seconds to finish, then the
// process exits 0.
#include <signal.h>
#include <unistd.h>

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/cli.h"
#include "common/logging.h"
#include "server/server.h"

int main(int argc, char** argv) {
  // Large buffers (lines, batches, decoded images) are allocated and freed all
  // the time: keep them in the heap instead of fresh mmaps, whose page faults
  // cost more than the copies.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  using m3serve::FlagSet;
  m3serve::server::ServerOptions o;
  std::string ready_file;
  int64_t workers = 0, max_streams = o.service.max_streams, drain_seconds = 20,
          // Instrumented teardown is slower.
#ifndef M3SERVE_SANITIZED
          teardown_ms = 600,
#else
          teardown_ms = 2500,
#endif
          cache_mb = static_cast<int64_t>(o.block_cache_bytes >> 20),
          max_batch = o.service.limits.max_batch_size,
          message_bytes = static_cast<int64_t>(o.service.limits.default_message_bytes),
          max_message_bytes = static_cast<int64_t>(o.service.limits.max_message_bytes),
          prefetch = o.service.prefetch_batches,
          prefetch_mb = o.service.prefetch_budget_bytes >> 20,
          max_pixels = static_cast<int64_t>(o.service.limits.max_decoded_pixels),
          max_get_ids = o.service.limits.max_get_ids, http_threads = o.http_threads, store_check_seconds = 5,
          thumbnail_mb = static_cast<int64_t>(o.thumbnail_cache_bytes >> 20);
  FlagSet flags("m3serve-server --db DIR [flags]",
                "Serve an m3serve store (opened read-only; several servers may share one) over gRPC:\n"
                "m3serve.v1.DatasetService, grpc.health.v1.Health and server reflection; and\n"
                "on an HTTP port, Prometheus /metrics and the dataset browser (a page and a JSON API).\n"
                "SIGTERM drains in-flight streams, then exits 0.");
  flags.String("db", &o.db, "store directory, or a publish root (its current version is served)", "DIR");
  flags.String("listen", &o.listen, "gRPC address (port 0: any free port)", "HOST:PORT");
  flags.String("http-listen", &o.http_listen,
               "HTTP address: Prometheus /metrics, and the dataset browser and /api/ with --browser (empty: off)",
               "HOST:PORT");
  flags.String("metrics-listen", &o.http_listen, "the same as --http-listen (its former name)", "HOST:PORT");
  flags.Bool("browser", &o.browser, "serve the dataset browser page and its JSON API (/, /api/) on --http-listen");
  flags.Int("http-threads", &http_threads, "HTTP connection threads (each serves one connection at a time)");
  flags.Int("thumbnail-cache-mb", &thumbnail_mb, "memory for the browser's cached thumbnails");
  flags.String("policy", &o.policy_file, "license policy file (JSON)", "FILE");
  flags.String("token-key-file", &o.token_key_file, "secret for resume tokens, shared by replicas", "FILE");
  flags.String("tls-cert", &o.tls_cert_file, "TLS certificate chain (PEM); with --tls-key: TLS only", "FILE");
  flags.String("tls-key", &o.tls_key_file, "TLS private key (PEM)", "FILE");
  flags.String("tls-client-ca", &o.tls_client_ca_file, "require client certificates signed by this CA (mTLS)", "FILE");
  flags.String("tokens", &o.tokens_file, "bearer tokens -> identities and entitlements (JSON); calls without one are refused", "FILE");
  flags.Int("workers", &workers, "threads for reads and decoding (0: one per core)");
  flags.Int("max-streams", &max_streams, "concurrent streams before RESOURCE_EXHAUSTED");
  flags.Int("max-batch-size", &max_batch, "largest batch_size a request may ask for");
  flags.Int("message-bytes", &message_bytes, "default byte cap per message");
  flags.Int("max-message-bytes", &max_message_bytes, "largest max_message_bytes a request may ask for");
  flags.Int("prefetch-batches", &prefetch, "batches a stream prepares ahead");
  flags.Int("prefetch-budget-mb", &prefetch_mb, "server-wide memory for prepared work (every stream may hold one share)");
  flags.Int("max-decoded-pixels", &max_pixels, "largest decoded image a request may ask for (output pixels)");
  flags.Int("max-get-ids", &max_get_ids, "most ids in one GetInstances call");
  flags.Int("block-cache-mb", &cache_mb, "RocksDB block cache");
  flags.Int("drain-seconds", &drain_seconds, "on SIGTERM, time in-flight calls get to finish");
  flags.Int("teardown-ms", &teardown_ms,
            "after the drain, time gRPC gets to complete the calls it cancels; then the process exits anyway");
  flags.Int("store-check-seconds", &store_check_seconds,
            "check the store's files (NOT_SERVING when gone), refresh the lease, notice new versions (0: off)");
  flags.String("lease-holder", &o.lease_holder, "name of this server's lease under a publish root (default HOST-PID)",
               "NAME");
  flags.String("ready-file", &ready_file,
               "write {\"port\": N, \"http_port\": M, \"metrics_port\": M, \"pid\": P} here once serving", "FILE");
  flags.set_epilog("exit status: 0 after a drain, 1 when the store cannot be served, 2 usage error");
  std::vector<std::string> args;
  if (int code; !flags.ParseOrExit(argc, argv, 1, "m3serve-server", &args, &code)) return code;
  if (o.db.empty() || !args.empty()) {
    std::fprintf(stderr, "m3serve-server: %s (see --help)\n",
                 o.db.empty() ? "--db is required" : ("unexpected argument " + args[0]).c_str());
    return 2;
  }
  if (max_streams < 1 || max_batch < 1 || message_bytes < 1024 || max_message_bytes < message_bytes ||
      prefetch < 0 || prefetch_mb < 0 || cache_mb < 1 || workers < 0 || drain_seconds < 0 || max_pixels < 1 ||
      max_get_ids < 1 || max_message_bytes > (1ll << 30) || http_threads < 2 || http_threads > 256 ||
      thumbnail_mb < 0 || store_check_seconds < 0 || teardown_ms < 0) {
    std::fprintf(stderr, "m3serve-server: a numeric flag is out of range (see --help)\n");
    return 2;
  }
  o.workers = static_cast<int>(workers);
  o.http_threads = static_cast<int>(http_threads);
  o.store_check_interval = absl::Seconds(store_check_seconds);
  o.thumbnail_cache_bytes = static_cast<uint64_t>(thumbnail_mb) << 20;
  o.block_cache_bytes = static_cast<uint64_t>(cache_mb) << 20;
  o.service.max_streams = static_cast<int>(max_streams);
  o.service.limits.max_batch_size = static_cast<uint32_t>(max_batch);
  o.service.limits.default_message_bytes = static_cast<uint64_t>(message_bytes);
  o.service.limits.max_message_bytes = static_cast<uint64_t>(max_message_bytes);
  o.service.prefetch_batches = static_cast<int>(prefetch);
  o.service.prefetch_budget_bytes = prefetch_mb << 20;
  o.service.limits.max_decoded_pixels = static_cast<uint64_t>(max_pixels);
  o.service.limits.max_get_ids = static_cast<int>(max_get_ids);

  // Block the shutdown signals in every thread; the main thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // The process ends at most --teardown-ms after the drain deadline, whatever
  // clients do (the store is opened read-only: an exit loses nothing).
  o.teardown_limit = absl::Milliseconds(teardown_ms);
  o.on_teardown_overrun = [] {
    std::fflush(nullptr);
    std::_Exit(0);
  };
  auto server = m3serve::server::Server::Start(o);
  if (!server.ok()) {
    std::fprintf(stderr, "m3serve-server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  if (!ready_file.empty()) {
    std::string tmp = ready_file + ".tmp";
    std::ofstream(tmp) << "{\"port\": " << (*server)->port() << ", \"http_port\": " << (*server)->http_port()
                       << ", \"metrics_port\": " << (*server)->http_port() << ", \"pid\": " << getpid() << "}\n";
    std::rename(tmp.c_str(), ready_file.c_str());
  }
  int sig = 0;
  sigwait(&signals, &sig);
  M3_LOG(INFO) << "signal " << sig << ": draining for up to " << drain_seconds << " s";
  (*server)->Shutdown(absl::Seconds(drain_seconds));
  const absl::Time t0 = absl::Now();
  server->reset();
  M3_LOG(INFO) << "drained; exiting (teardown " << absl::ToDoubleSeconds(absl::Now() - t0) << " s)";
  return 0;
}
