#include "server/http_listener.h"

#include <civetweb.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace m3serve::server {
namespace {

// Most query parameters one request may carry; more is a 400.
constexpr unsigned kMaxQueryParameters = 64;

// civetweb reports why mg_start failed through log_message, on the thread
// that calls mg_start.
thread_local std::string start_error;

int LogMessage(const struct mg_connection*, const char* message) {
  start_error = message ? message : "";
  return 1;  // handled: civetweb prints nothing itself
}

void Send(struct mg_connection* conn, const HttpRequest& req, const HttpResponse& r) {
  mg_response_header_start(conn, r.status);
  mg_response_header_add(conn, "Content-Type", r.content_type.c_str(), -1);
  mg_response_header_add(conn, "Content-Length", std::to_string(r.body.size()).c_str(), -1);
  mg_response_header_add(conn, "X-Content-Type-Options", "nosniff", -1);
  for (const auto& [name, value] : r.headers) mg_response_header_add(conn, name.c_str(), value.c_str(), -1);
  mg_response_header_send(conn);
  if (req.method != "HEAD" && !r.body.empty()) mg_write(conn, r.body.data(), r.body.size());
}

HttpResponse PlainError(int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = absl::StrCat("{\"error\":{\"status\":", status, ",\"message\":\"", message, "\"}}");
  return r;
}

}  // namespace

struct HttpListener::Impl {
  HttpHandler handler;
  struct mg_context* ctx = nullptr;
  std::mutex mu;
  std::condition_variable idle;
  int in_flight = 0;
  bool closed = false;

  static int BeginRequest(struct mg_connection* conn) {
    auto* self = static_cast<Impl*>(mg_get_user_data(mg_get_context(conn)));
    const struct mg_request_info* info = mg_get_request_info(conn);
    HttpRequest req;
    req.method = info->request_method ? info->request_method : "";
    req.path = info->local_uri ? info->local_uri : "";
    req.peer = absl::StrCat(info->remote_addr, ":", info->remote_port);
    if (const char* a = mg_get_header(conn, "Authorization")) req.authorization = a;
    if (const char* e = mg_get_header(conn, "If-None-Match")) req.if_none_match = e;
    if (info->query_string != nullptr) {
      std::string q = info->query_string;  // decoded in place
      struct mg_header fields[kMaxQueryParameters + 1];
      int n = mg_split_form_urlencoded(q.data(), fields, kMaxQueryParameters + 1);
      if (n > static_cast<int>(kMaxQueryParameters)) {
        Send(conn, req, PlainError(400, absl::StrCat("more than ", kMaxQueryParameters, " query parameters")));
        return 1;
      }
      for (int i = 0; i < n; ++i) {
        req.query.emplace_back(fields[i].name ? fields[i].name : "", fields[i].value ? fields[i].value : "");
      }
    }
    {
      std::lock_guard<std::mutex> lock(self->mu);
      if (self->closed) {
        Send(conn, req, PlainError(503, "the server is shutting down"));
        return 1;
      }
      ++self->in_flight;
    }
    HttpResponse r;
    try {
      r = self->handler(req);
    } catch (const std::exception& e) {
      M3_LOG(ERROR) << "http " << req.method << " " << req.path << ": " << e.what();
      r = PlainError(500, "internal error");
    }
    Send(conn, req, r);
    {
      std::lock_guard<std::mutex> lock(self->mu);
      if (--self->in_flight == 0) self->idle.notify_all();
    }
    return 1;  // handled
  }
};

absl::StatusOr<std::unique_ptr<HttpListener>> HttpListener::Start(const std::string& address, int threads,
                                                                  HttpHandler handler) {
  static const unsigned kInit = mg_init_library(0);
  (void)kInit;
  std::unique_ptr<HttpListener> l(new HttpListener());
  l->impl_ = std::make_unique<Impl>();
  l->impl_->handler = std::move(handler);
  const std::string thread_count = std::to_string(threads);
  const char* options[] = {"listening_ports", address.c_str(),
                           "num_threads", thread_count.c_str(),
                           "enable_keep_alive", "yes",
                           "keep_alive_timeout_ms", "5000",
                           "request_timeout_ms", "30000",
                           // Headers and body go out in two writes: without
                           // TCP_NODELAY, Nagle holds the body for the
                           // client's delayed ACK (40 ms per request).
                           "tcp_nodelay", "1",
                           nullptr};
  struct mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  callbacks.begin_request = &Impl::BeginRequest;
  callbacks.log_message = &LogMessage;
  start_error.clear();
  l->impl_->ctx = mg_start(&callbacks, l->impl_.get(), options);
  if (l->impl_->ctx == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot serve HTTP on ", address,
                                               start_error.empty() ? "" : ": ", start_error));
  }
  struct mg_server_port ports[4];
  std::memset(ports, 0, sizeof(ports));
  if (mg_get_server_ports(l->impl_->ctx, 4, ports) > 0) l->port_ = ports[0].port;
  return l;
}

void HttpListener::Close() {
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->closed = true;
  impl_->idle.wait(lock, [this] { return impl_->in_flight == 0; });
}

HttpListener::~HttpListener() {
  if (impl_ && impl_->ctx) {
    Close();
    mg_stop(impl_->ctx);
  }
}

}  // namespace m3serve::server
