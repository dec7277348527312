// File: server/metrics.h
//
// Prometheus metrics of the server, exposed over HTTP (/metrics, by the
// server's HTTP listener):
//   m3serve_streams_active                gauge
//   m3serve_streams_total                 counter
//   m3serve_instances_sent_total          counter
//   m3serve_bytes_sent_total              counter (serialized message bytes)
//   m3serve_images_sent_total             counter
//   m3serve_decode_seconds                histogram (one image decode + resize)
//   m3serve_errors_total{code="..."}      counter, by gRPC status code
//   m3serve_store_ok                      gauge: 1 while the store's files are all there
//   m3serve_store_outdated                gauge: 1 once a newer version is published
//   m3serve_http_requests_total{endpoint="...",status="..."}
//                                         counter: HTTP requests by endpoint
//                                         (catalog, count, instances, instance,
//                                         image, page, metrics, other) and status
// Thread-safe.
#ifndef M3SERVE_SERVER_METRICS_H_
#define M3SERVE_SERVER_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>


namespace m3serve::server {

class Metrics {
 public:
  static std::unique_ptr<Metrics> Create();
  ~Metrics();

  void StreamStarted();
  void StreamEnded();
  void Sent(uint64_t instances, uint64_t images, uint64_t bytes);
  void Decoded(double seconds);
  // `code` is a gRPC status code name, e.g. "NOT_FOUND".
  void Error(const std::string& code);
  // The store watch's findings (see ServerOptions::store_check_interval).
  void SetStoreState(bool ok, bool outdated);
  // One HTTP request to `endpoint` (a fixed name, not the path) answered with `status`.
  void HttpRequest(const std::string& endpoint, int status);

  // The text exposition format (what /metrics returns).
  std::string Scrape() const;

 private:
  struct Impl;
  explicit Metrics(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_METRICS_H_
