#include "ingest/image_codecs.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace m3serve::ingest {
namespace {

constexpr char kPluginName[] = "m3serve-image-codecs.so";

using DecodeFn = int (*)(const unsigned char*, size_t, int, int*, int*);
using EncodeFn = int (*)(const char*, const cv::Mat*, const int*, size_t, std::vector<unsigned char>*);

struct Plugin {
  absl::StatusOr<std::string> path = absl::UnknownError("not loaded");
  DecodeFn decode = nullptr;
  EncodeFn encode = nullptr;
};

// Where the plugin may be: $M3SERVE_PLUGIN_DIR, then <dir of the running
// binary>/../lib/m3serve (the build tree's build/lib/m3serve for build/bin and
// build/tests; the install prefix's lib/m3serve), then the binary's own folder.
std::vector<std::string> Candidates() {
  std::vector<std::string> out;
  if (const char* dir = std::getenv("M3SERVE_PLUGIN_DIR"); dir != nullptr && *dir != '\0') {
    out.push_back((std::filesystem::path(dir) / kPluginName).string());
  }
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back((exe.parent_path().parent_path() / "lib" / "m3serve" / kPluginName).string());
    out.push_back((exe.parent_path() / kPluginName).string());
  }
  return out;
}

const Plugin& Get() {
  static Plugin* plugin = [] {
    auto* p = new Plugin;
    std::vector<std::string> tried;
    for (const std::string& path : Candidates()) {
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) {
        tried.push_back(absl::StrCat(path, " (missing)"));
        continue;
      }
      void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h == nullptr) {
        const char* err = ::dlerror();
        tried.push_back(absl::StrCat(path, " (", err ? err : "dlopen failed", ")"));
        continue;
      }
      p->decode = reinterpret_cast<DecodeFn>(::dlsym(h, "m3serve_codecs_decode"));
      p->encode = reinterpret_cast<EncodeFn>(::dlsym(h, "m3serve_codecs_encode"));
      if (p->decode == nullptr || p->encode == nullptr) {
        tried.push_back(absl::StrCat(path, " (not an m3serve image codec plugin)"));
        continue;
      }
      p->path = path;
      return p;
    }
    p->path = absl::FailedPreconditionError(absl::StrCat(
        "the image codec plugin ", kPluginName, " (OpenCV imgcodecs) cannot be loaded; looked at: ",
        absl::StrJoin(tried, ", "), "; set M3SERVE_PLUGIN_DIR to its folder"));
    return p;
  }();
  return *plugin;
}

}  // namespace

absl::StatusOr<std::string> LoadImageCodecs() { return Get().path; }

absl::StatusOr<std::optional<std::pair<int, int>>> DecodeImageSize(absl::string_view bytes, int flags) {
  const Plugin& p = Get();
  if (!p.path.ok()) return p.path.status();
  int width = 0, height = 0;
  if (!p.decode(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), flags, &width, &height)) {
    return std::optional<std::pair<int, int>>();
  }
  return std::optional<std::pair<int, int>>(std::make_pair(width, height));
}

absl::StatusOr<std::vector<unsigned char>> EncodeImage(const std::string& ext, const cv::Mat& image,
                                                       const std::vector<int>& params) {
  const Plugin& p = Get();
  if (!p.path.ok()) return p.path.status();
  std::vector<unsigned char> out;
  if (!p.encode(ext.c_str(), &image, params.data(), params.size(), &out)) {
    return absl::InvalidArgumentError(absl::StrCat("OpenCV cannot encode a ", image.cols, "x", image.rows,
                                                   " image as ", ext));
  }
  return out;
}

}  // namespace m3serve::ingest
