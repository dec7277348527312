// Fuzz target: the dataset browser's HTTP API (server/http_api.h) on a small
// in-memory store with real images, for arbitrary request targets
// ("path?name=value&..." with any bytes), as an anonymous caller, as a narrow
// token, with a wide token and with an unknown one. Every answer must have a
// status the API documents, a JSON error naming its status for every error,
// JSON for every 200 of /api/, and nothing of a task the caller's
// entitlement excludes; a 500 only for the one damaged image of the store. Seeds: fuzz/corpus/http_api_fuzzer (first byte: the
// caller; the rest: the request target).
#include <simdjson.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "server/http_api.h"
#include "server/test_files.h"

namespace m3serve::server {
namespace {

constexpr char kNarrow[] = "narrow-token-0123456789";
constexpr char kWide[] = "wide-token-0123456789ab";

struct World {
  std::unique_ptr<Metrics> metrics = Metrics::Create();
  std::unique_ptr<Dataset> dataset;
  std::unique_ptr<HttpApi> open;     // no tokens
  std::unique_ptr<HttpApi> guarded;  // tokens
  std::vector<Hash128> images;       // "@0".."@4" in a target stand for these hashes
};

std::string Png(int w, int h, int seed) {
  cv::Mat m(h, w, CV_8UC3, cv::Scalar(seed * 30 % 255, 80, 200));
  std::vector<uchar> out;
  cv::imencode(".png", m, out);
  return std::string(out.begin(), out.end());
}

World& GetWorld() {
  static World* world = [] {
    auto* w = new World;
    storage::Catalog c;
    auto task = [&](const char* name, const char* license) {
      storage::TaskInfo t;
      t.name = name;
      t.category = "vqa";
      t.license = license;
      c.tasks[name] = t;
    };
    task("coco", "CC-BY-4.0");
    task("vqa-v2", "LicenseRef-Custom");
    task("msrvtt", "CC-BY-4.0");
    c.pools[{"coco", "en"}] = {"Describe it."};
    auto reader = std::make_unique<MemoryReader>();
    std::vector<Hash128>& images = w->images;
    for (int i = 0; i < 4; ++i) images.push_back(reader->AddImage(Png(20 + 9 * i, 16 + 5 * i, i)));
    images.push_back(reader->AddImage("not an image"));  // a damaged store: its thumbnail is a 500
    for (const auto& [task_name, split, lang, n] :
         std::vector<std::tuple<std::string, std::string, std::string, int>>{
             {"coco", "train", "en", 5}, {"coco", "test", "zh", 2}, {"vqa-v2", "train", "en", 4},
             {"msrvtt", "validation", "en", 3}}) {
      storage::GroupKey g{task_name, split, lang};
      c.counts[g] = static_cast<uint64_t>(n);
      for (int o = 0; o < n; ++o) {
        storage::Instance x;
        x.group = g;
        x.ordinal = static_cast<uint64_t>(o);
        x.inputs = o % 2 ? "<script>alert(1)</script>" : "\xff\xfe invalid utf-8";
        x.instruction = o % 3 ? "" : "Q?";
        for (int k = 0; k <= o % 3; ++k) x.images.push_back(images[static_cast<size_t>(o + k) % images.size()]);
        reader->Add(std::move(x));
      }
    }
    c.fingerprint = ContentHash("http-fuzz");
    w->dataset = Dataset::FromCatalog(c, LicensePolicy{}, std::move(reader));
    HttpApiOptions o;
    o.thumbnail_cache_bytes = 1 << 16;
    o.max_page_size = 50;
    w->open = std::make_unique<HttpApi>(w->dataset.get(), w->metrics.get(), o);
    auto tokens = TokenTable::Load(testing::WriteTempFile(
        "http_fuzz_tokens", std::string(R"({"tokens": [{"token": ")") + kNarrow +
                                R"(", "identity": "narrow", "allowed_licenses": ["CC-BY-4.0"]}, {"token": ")" +
                                kWide + R"(", "identity": "wide"}]})"));
    M3_CHECK(tokens.ok()) << tokens.status();
    o.tokens = std::make_shared<const TokenTable>(std::move(*tokens));
    w->guarded = std::make_unique<HttpApi>(w->dataset.get(), w->metrics.get(), o);
    return w;
  }();
  return *world;
}

}  // namespace
}  // namespace m3serve::server

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace m3serve::server;
  if (size == 0) return 0;
  World& world = GetWorld();
  const uint8_t who = data[0] % 5;  // 0 anonymous (open API), 1 none, 2 narrow, 3 wide, 4 unknown token
  std::string target(reinterpret_cast<const char*>(data + 1), size - 1);
  for (size_t at = target.find('@'); at != std::string::npos && at + 1 < target.size(); at = target.find('@', at + 1)) {
    const char k = target[at + 1];
    if (k >= '0' && k <= '4') target.replace(at, 2, world.images[static_cast<size_t>(k - '0')].Hex());
  }
  HttpRequest req;
  req.method = (data[0] & 0x80) ? "HEAD" : "GET";
  const size_t q = target.find('?');
  req.path = target.substr(0, q);
  if (q != std::string::npos) {
    for (absl::string_view kv : absl::StrSplit(absl::string_view(target).substr(q + 1), '&')) {
      const size_t eq = kv.find('=');
      req.query.emplace_back(std::string(kv.substr(0, eq)),
                             eq == absl::string_view::npos ? "" : std::string(kv.substr(eq + 1)));
    }
  }
  if (who == 2) req.authorization = std::string("Bearer ") + kNarrow;
  if (who == 3) req.authorization = std::string("Bearer ") + kWide;
  if (who == 4) req.authorization = "Bearer unknown-token-000000000";
  HttpApi& api = who == 0 ? *world.open : *world.guarded;
  const HttpResponse r = api.Handle(req);
  switch (r.status) {
    case 200: case 304: case 400: case 401: case 403: case 404: case 405: break;
    case 500:  // only an image the store holds damaged
      M3_CHECK(absl::StartsWith(req.path, "/api/images/" + world.images[4].Hex())) << target << ": " << r.body;
      break;
    default: M3_CHECK(false) << "undocumented status " << r.status << " for " << target << ": " << r.body;
  }
  static simdjson::dom::parser parser;
  const bool json = absl::StartsWith(r.content_type, "application/json");
  if (r.status >= 400) {
    M3_CHECK(json) << r.content_type;
    auto doc = parser.parse(r.body);
    M3_CHECK(!doc.error()) << r.body;
    int64_t status = 0;
    M3_CHECK(!doc["error"]["status"].get(status) && status == r.status) << r.body;
  } else if (r.status == 200 && json) {
    auto doc = parser.parse(r.body);
    M3_CHECK(!doc.error()) << "invalid JSON for " << target << ": " << r.body;
    if (who == 2) {  // the narrow token never sees vqa-v2 (LicenseRef-Custom)
      M3_CHECK(r.body.find("\"task\":\"vqa-v2\"") == std::string::npos) << target << ": " << r.body;
    }
  }
  if (who == 1 || who == 4) {
    M3_CHECK(r.status != 200 || !absl::StartsWith(req.path, "/api/") || req.path == "/api/")
        << "an API answer without a known token: " << target;
  }
  return 0;
}
