// File: server/http_listener.h
//
// The server's HTTP listener (civetweb): /metrics, and the dataset browser
// and its JSON API when enabled. This is the only file that knows civetweb;
// handlers see plain HttpRequest / HttpResponse values, so they are tested
// without a socket.
#ifndef M3SERVE_SERVER_HTTP_LISTENER_H_
#define M3SERVE_SERVER_HTTP_LISTENER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace m3serve::server {

struct HttpRequest {
  std::string method;  // "GET", "HEAD", ...
  std::string path;    // URL-decoded, without the query
  // Query parameters, URL-decoded, in order (a name may repeat).
  std::vector<std::pair<std::string, std::string>> query;
  std::string authorization;  // the Authorization header, or ""
  std::string if_none_match;  // the If-None-Match header, or ""
  std::string peer;           // "ip:port"
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Extra headers (Cache-Control, ETag, WWW-Authenticate, ...).
  std::vector<std::pair<std::string, std::string>> headers;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpListener {
 public:
  // Listen on `address` ("host:port"; port 0 picks a free one) with `threads`
  // connection threads, answering every request with `handler` (called
  // concurrently). Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpListener>> Start(const std::string& address, int threads,
                                                             HttpHandler handler);
  ~HttpListener();

  int port() const { return port_; }

  // From now on answer 503 without calling the handler, and wait until the
  // handler calls in progress have returned (so what the handler refers to
  // may be destroyed after this). The socket stays open until destruction.
  void Close();

 private:
  struct Impl;
  HttpListener() = default;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_HTTP_LISTENER_H_
