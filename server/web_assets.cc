#include "server/web_assets.h"

namespace m3serve::server {

// Generated from server/web/ by cmake/embed_web_assets.cmake.
extern const WebAsset kWebAssets[];
extern const size_t kWebAssetCount;

const WebAsset* FindWebAsset(absl::string_view path) {
  for (size_t i = 0; i < kWebAssetCount; ++i) {
    if (path == kWebAssets[i].path) return &kWebAssets[i];
  }
  return nullptr;
}

}  // namespace m3serve::server
