// File: server/http_api.h
//
// What the server's HTTP listener answers: /metrics, the dataset browser page
// (/, /static/...) and its JSON API (/api/...). Requests are checked by the
// same rules as the gRPC API: the selection converted as a v1::Selection, the
// ids as GetInstances ids, the bearer token by AuthenticateCall, the license
// policy and the caller's entitlement by the Dataset. No civetweb and no gRPC
// here (see http_listener.h); tests call Handle() directly.
//
//   GET /api                         the endpoints, the gRPC port, whether
//                                    tokens are required, the dataset version
//   GET /api/catalog                 the catalog as the caller sees it
//   GET /api/count?SELECTION         instances per group (CountResponse)
//   GET /api/instances?SELECTION&page=P&page_size=K[&seed=S]
//                                    page P of the selection, in key order or
//                                    shuffled by seed S; texts shortened
//   GET /api/instances/ID            one instance, whole, with its task and
//                                    the task's instruction pool
//   GET /api/images/HASH[?size=N][&instance=ID]
//                                    a stored image (size 0 or absent: the
//                                    stored bytes) or a JPEG thumbnail whose
//                                    longer side is N; `instance` (an instance
//                                    that shows the image) is required when
//                                    the caller does not see every task
// SELECTION: tasks, categories, splits, languages, licenses, exclude_tasks,
// eval_splits, eval_tasks (comma-separated or repeated), commercial_use_only,
// exclude_eval_images (true/false), modality (image|video), held_out
// (any|exclude|only). Errors are {"error": {"status", "code", "parameter",
// "message"}}: 400 for a bad parameter (naming it), 401 without a known
// token, 403 beyond the policy or entitlement, 404 for an unknown path or
// instance or image, 503 while shutting down.
#ifndef M3SERVE_SERVER_HTTP_API_H_
#define M3SERVE_SERVER_HTTP_API_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "server/auth.h"
#include "server/dataset.h"
#include "server/http_listener.h"
#include "server/instance_builder.h"
#include "server/metrics.h"
#include "server/proto_convert.h"
#include "server/thumbnails.h"

namespace m3serve::server {

struct HttpApiOptions {
  // Serve the page and /api/ (otherwise only /metrics).
  bool browser = true;
  RequestLimits limits;
  // Bearer tokens and their identities; null: no authentication.
  std::shared_ptr<const TokenTable> tokens;
  // Largest page_size of /api/instances.
  uint32_t max_page_size = 200;
  // Characters kept of each text field in /api/instances (whole in /api/instances/ID).
  uint32_t list_text_chars = 300;
  // Memory for cached thumbnails.
  uint64_t thumbnail_cache_bytes = 64ull << 20;
  // The server's gRPC port (the page shows client commands with it).
  int grpc_port = 0;
};

class HttpApi {
 public:
  // `dataset` and `metrics` must outlive the API.
  HttpApi(const Dataset* dataset, Metrics* metrics, HttpApiOptions options);

  // Answer one request. Thread-safe.
  HttpResponse Handle(const HttpRequest& request);

  const ThumbnailCache& thumbnails() const { return thumbnails_; }

 private:
  struct Call;
  HttpResponse Route(const HttpRequest& request);
  HttpResponse Catalog(Call& call);
  HttpResponse Count(Call& call);
  HttpResponse Instances(Call& call);
  HttpResponse Instance(Call& call, const std::string& id);
  HttpResponse Image(Call& call, const std::string& hash);
  // The stored instance `id` (asked for in `parameter`) and the options to
  // build it with, or the refusal: 400 malformed, 403 beyond the policy or
  // entitlement, 404 absent.
  std::optional<HttpResponse> Read(Call& call, const std::string& id, const std::string& parameter,
                                   storage::Instance* out, BuildOptions* build);

  const Dataset* dataset_;
  Metrics* metrics_;
  HttpApiOptions options_;
  ThumbnailCache thumbnails_;
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_HTTP_API_H_
