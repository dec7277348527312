#include "server/metrics.h"

#include <mutex>
#include <sstream>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>


namespace m3serve::server {

struct Metrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Gauge* streams_active = nullptr;
  prometheus::Counter* streams_total = nullptr;
  prometheus::Counter* instances = nullptr;
  prometheus::Counter* images = nullptr;
  prometheus::Counter* bytes = nullptr;
  prometheus::Histogram* decode = nullptr;
  prometheus::Family<prometheus::Counter>* errors = nullptr;
  prometheus::Family<prometheus::Counter>* http = nullptr;
  prometheus::Gauge* store_ok = nullptr;
  prometheus::Gauge* store_outdated = nullptr;
  std::mutex errors_mu;  // Family::Add is thread-safe, but keep label creation serialized
};

Metrics::Metrics(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Metrics::~Metrics() = default;

std::unique_ptr<Metrics> Metrics::Create() {
  auto impl = std::make_unique<Impl>();
  auto& r = *impl->registry;
  impl->streams_active = &prometheus::BuildGauge()
                              .Name("m3serve_streams_active")
                              .Help("Streams being served")
                              .Register(r)
                              .Add({});
  impl->streams_total = &prometheus::BuildCounter()
                             .Name("m3serve_streams_total")
                             .Help("Streams started")
                             .Register(r)
                             .Add({});
  impl->instances = &prometheus::BuildCounter()
                         .Name("m3serve_instances_sent_total")
                         .Help("Instances sent to clients")
                         .Register(r)
                         .Add({});
  impl->images = &prometheus::BuildCounter()
                      .Name("m3serve_images_sent_total")
                      .Help("Images sent to clients")
                      .Register(r)
                      .Add({});
  impl->bytes = &prometheus::BuildCounter()
                     .Name("m3serve_bytes_sent_total")
                     .Help("Serialized bytes of instance messages sent")
                     .Register(r)
                     .Add({});
  impl->decode = &prometheus::BuildHistogram()
                      .Name("m3serve_decode_seconds")
                      .Help("Time to decode and resize one image")
                      .Register(r)
                      .Add({}, prometheus::Histogram::BucketBoundaries{
                                   0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1});
  impl->errors = &prometheus::BuildCounter()
                      .Name("m3serve_errors_total")
                      .Help("Calls that ended with an error, by gRPC status code")
                      .Register(r);
  impl->store_ok = &prometheus::BuildGauge()
                        .Name("m3serve_store_ok")
                        .Help("1 while every file of the served store is there; 0: NOT_SERVING, replace the pod")
                        .Register(r)
                        .Add({});
  impl->store_outdated = &prometheus::BuildGauge()
                              .Name("m3serve_store_outdated")
                              .Help("1 once a newer version is published than the one served (restart to move)")
                              .Register(r)
                              .Add({});
  impl->http = &prometheus::BuildCounter()
                    .Name("m3serve_http_requests_total")
                    .Help("HTTP requests (metrics, dataset browser, JSON API) by endpoint and status")
                    .Register(r);
  return std::unique_ptr<Metrics>(new Metrics(std::move(impl)));
}

void Metrics::StreamStarted() {
  impl_->streams_active->Increment();
  impl_->streams_total->Increment();
}
void Metrics::StreamEnded() { impl_->streams_active->Decrement(); }
void Metrics::Sent(uint64_t instances, uint64_t images, uint64_t bytes) {
  impl_->instances->Increment(static_cast<double>(instances));
  impl_->images->Increment(static_cast<double>(images));
  impl_->bytes->Increment(static_cast<double>(bytes));
}
void Metrics::Decoded(double seconds) { impl_->decode->Observe(seconds); }
void Metrics::Error(const std::string& code) {
  std::lock_guard<std::mutex> lock(impl_->errors_mu);
  impl_->errors->Add({{"code", code}}).Increment();
}

void Metrics::SetStoreState(bool ok, bool outdated) {
  impl_->store_ok->Set(ok ? 1 : 0);
  impl_->store_outdated->Set(outdated ? 1 : 0);
}

void Metrics::HttpRequest(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(impl_->errors_mu);
  impl_->http->Add({{"endpoint", endpoint}, {"status", std::to_string(status)}}).Increment();
}

std::string Metrics::Scrape() const {
  prometheus::TextSerializer s;
  return s.Serialize(impl_->registry->Collect());
}

}  // namespace m3serve::server
