// File: server/web_assets.h
//
// The dataset browser's files (server/web/), compiled into the server so the
// page needs no build step, no files beside the binary and no network.
#ifndef M3SERVE_SERVER_WEB_ASSETS_H_
#define M3SERVE_SERVER_WEB_ASSETS_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace m3serve::server {

struct WebAsset {
  const char* path;  // "/index.html", "/static/app.js", ...
  const char* content_type;
  const char* data;
  size_t size;
};

// The asset served at `path`, or nullptr.
const WebAsset* FindWebAsset(absl::string_view path);

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_WEB_ASSETS_H_
