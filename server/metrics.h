// File: server/metrics.h
//
// Prometheus metrics of the server, exposed over HTTP (/metrics):
//   m3serve_streams_active                gauge
//   m3serve_streams_total                 counter
//   m3serve_instances_sent_total          counter
//   m3serve_bytes_sent_total              counter (serialized message bytes)
//   m3serve_images_sent_total             counter
//   m3serve_decode_seconds                histogram (one image decode + resize)
//   m3serve_errors_total{code="..."}      counter, by gRPC status code
// Thread-safe.
#ifndef M3SERVE_SERVER_METRICS_H_
#define M3SERVE_SERVER_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace m3serve::server {

class Metrics {
 public:
  // Expose metrics on `listen` ("host:port"; port 0 picks one). Empty: keep
  // metrics in memory only. Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Metrics>> Create(const std::string& listen);
  ~Metrics();

  // The bound HTTP port, or 0 when not exposed.
  int port() const;

  void StreamStarted();
  void StreamEnded();
  void Sent(uint64_t instances, uint64_t images, uint64_t bytes);
  void Decoded(double seconds);
  // `code` is a gRPC status code name, e.g. "NOT_FOUND".
  void Error(const std::string& code);

  // The text exposition format (what /metrics returns).
  std::string Scrape() const;

 private:
  struct Impl;
  explicit Metrics(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_METRICS_H_
