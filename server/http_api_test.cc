#include "server/http_api.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <simdjson.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/test_files.h"

namespace m3serve::server {
namespace {

using ::m3serve::server::testing::WriteTempFile;
using ::testing::HasSubstr;
using storage::GroupKey;

std::string Png(int w, int h, int seed) {
  cv::Mat m(h, w, CV_8UC3, cv::Scalar(seed * 20 % 255, 90, 160));
  std::vector<uchar> out;
  cv::imencode(".png", m, out);
  return std::string(out.begin(), out.end());
}

// A small store: captioning in two languages (CC-BY-4.0), VQA (custom
// license), video (several frames); one row holds markup.
struct Fixture {
  storage::Catalog catalog;
  std::unique_ptr<MemoryReader> reader = std::make_unique<MemoryReader>();
  std::vector<storage::Instance> instances;
  std::vector<Hash128> images;

  Fixture() {
    auto task = [&](const std::string& name, const std::string& category, const std::string& license,
                    storage::Modality modality) {
      storage::TaskInfo t;
      t.name = name;
      t.category = category;
      t.license = license;
      t.source_dataset = name + " source";
      t.modality = modality;
      catalog.tasks[name] = t;
    };
    task("coco", "captioning", "CC-BY-4.0", storage::Modality::kImage);
    task("vqa-v2", "vqa", "LicenseRef-Custom", storage::Modality::kImage);
    task("msrvtt", "captioning", "CC-BY-4.0", storage::Modality::kVideo);
    catalog.pools[{"coco", "en"}] = {"Describe the image.", "Write a caption."};
    for (int i = 0; i < 8; ++i) images.push_back(reader->AddImage(Png(40 + 10 * i, 30 + 5 * i, i)));
    const std::vector<std::tuple<std::string, std::string, std::string, int>> groups = {
        {"coco", "train", "en", 7}, {"coco", "train", "zh", 5}, {"coco", "validation", "en", 3},
        {"vqa-v2", "train", "en", 6}, {"msrvtt", "test", "en", 2}};
    for (const auto& [t, s, l, n] : groups) {
      GroupKey g{t, s, l};
      catalog.counts[g] = static_cast<uint64_t>(n);
      for (int o = 0; o < n; ++o) {
        storage::Instance x;
        x.group = g;
        x.ordinal = static_cast<uint64_t>(o);
        x.instruction = t == "coco" && o % 2 ? "" : "Answer: <b>" + t + "</b>";
        x.inputs = o == 1 ? "<script>window.injected=1</script>" : std::string(500, 'x') + std::to_string(o);
        x.outputs = absl::StrCat(t, " output ", o);
        x.source.file = t + "/" + s + ".jsonl";
        x.source.line = static_cast<uint64_t>(o + 1);
        const int k = t == "msrvtt" ? 4 : 1;
        for (int i = 0; i < k; ++i) x.images.push_back(images[(o + i) % images.size()]);
        instances.push_back(x);
        reader->Add(x);
      }
    }
    catalog.fingerprint = ContentHash("fixture");
  }
};

class HttpApiTest : public ::testing::Test {
 protected:
  void Make(HttpApiOptions options = {}, LicensePolicy policy = {}) {
    Fixture f;
    instances_ = f.instances;
    images_ = f.images;
    dataset_ = Dataset::FromCatalog(f.catalog, std::move(policy), std::move(f.reader));
    api_ = std::make_unique<HttpApi>(dataset_.get(), metrics_.get(), std::move(options));
  }
  HttpResponse Get(const std::string& path, std::vector<std::pair<std::string, std::string>> query = {},
                   const std::string& token = "") {
    HttpRequest r;
    r.method = "GET";
    r.path = path;
    r.query = std::move(query);
    if (!token.empty()) r.authorization = "Bearer " + token;
    return api_->Handle(r);
  }
  simdjson::dom::element Parse(const HttpResponse& r) {
    auto doc = parser_.parse(r.body);
    EXPECT_FALSE(doc.error()) << r.body;
    return doc.value();
  }
  // The error's parameter, after checking the status.
  std::string ErrorParameter(const HttpResponse& r, int status) {
    EXPECT_EQ(r.status, status) << r.body;
    auto p = Parse(r)["error"]["parameter"];
    if (p.is_null()) return "";
    return std::string(p.get_string().value());
  }

  std::unique_ptr<Metrics> metrics_ = Metrics::Create();
  std::unique_ptr<Dataset> dataset_;
  std::unique_ptr<HttpApi> api_;
  std::vector<storage::Instance> instances_;
  std::vector<Hash128> images_;
  simdjson::dom::parser parser_;
};

TEST_F(HttpApiTest, CatalogAndCount) {
  Make();
  HttpResponse r = Get("/api/catalog");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json; charset=utf-8");
  std::set<std::string> tasks;
  for (auto t : Parse(r)["tasks"].get_array()) tasks.insert(std::string(t["name"].get_string().value()));
  EXPECT_EQ(tasks, (std::set<std::string>{"coco", "msrvtt", "vqa-v2"}));
  r = Get("/api/count", {{"languages", "zh"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(std::string(Parse(r)["total"].get_string().value()), "5");
  r = Get("/api/count", {{"tasks", "coco,vqa-v2"}, {"splits", "train"}});
  EXPECT_EQ(std::string(Parse(r)["total"].get_string().value()), "18");
  r = Get("/api");
  EXPECT_FALSE(Parse(r)["tokens_required"].get_bool().value());
}

// Property: for random selections, page sizes and seeds, the pages of
// /api/instances together hold every selected instance exactly once, the
// same seed gives the same order, and `total` is the selection's size.
TEST_F(HttpApiTest, PagesCoverTheSelectionExactlyOnce) {
  Make();
  std::mt19937_64 rng(3);
  const std::vector<std::string> langs = {"", "en", "zh"}, splits = {"", "train", "validation", "test"},
                                 tasks = {"", "coco", "vqa-v2", "msrvtt", "coco,msrvtt"};
  for (int round = 0; round < 60; ++round) {
    std::vector<std::pair<std::string, std::string>> q;
    const std::string lang = langs[rng() % langs.size()], split = splits[rng() % splits.size()],
                      task = tasks[rng() % tasks.size()];
    if (!lang.empty()) q.emplace_back("languages", lang);
    if (!split.empty()) q.emplace_back("splits", split);
    if (!task.empty()) q.emplace_back("tasks", task);
    const bool shuffled = rng() % 2;
    if (shuffled) q.emplace_back("seed", std::to_string(rng() % 1000));
    const uint64_t page_size = 1 + rng() % 9;
    q.emplace_back("page_size", std::to_string(page_size));
    std::multiset<std::string> expected;
    for (const auto& x : instances_) {
      if ((lang.empty() || x.group.lang == lang) && (split.empty() || x.group.split == split) &&
          (task.empty() || absl::StrCat(",", task, ",").find("," + x.group.task + ",") != std::string::npos)) {
        expected.insert(x.Id());
      }
    }
    std::vector<std::string> seen;
    for (uint64_t page = 0;; ++page) {
      auto pq = q;
      pq.emplace_back("page", std::to_string(page));
      HttpResponse r = Get("/api/instances", pq);
      ASSERT_EQ(r.status, 200) << r.body;
      auto doc = Parse(r);
      EXPECT_EQ(doc["total"].get_uint64().value(), expected.size());
      auto arr = doc["instances"].get_array();
      ASSERT_LE(arr.size(), page_size);
      for (auto x : arr) seen.emplace_back(x["id"].get_string().value());
      if (arr.size() == 0) break;
    }
    EXPECT_EQ(std::multiset<std::string>(seen.begin(), seen.end()), expected);
    if (!shuffled) {  // key order: task, split, language, ordinal
      std::vector<storage::Instance> sorted = instances_;
      std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
        return std::tie(a.group.task, a.group.split, a.group.lang, a.ordinal) <
               std::tie(b.group.task, b.group.split, b.group.lang, b.ordinal);
      });
      std::vector<std::string> in_order;
      for (const auto& x : sorted) {
        if (expected.count(x.Id())) in_order.push_back(x.Id());
      }
      EXPECT_EQ(seen, in_order);
    }
    // Deterministic: page 0 again is the same.
    auto pq = q;
    pq.emplace_back("page", "0");
    auto again = Parse(Get("/api/instances", pq))["instances"].get_array();
    size_t i = 0;
    for (auto x : again) EXPECT_EQ(std::string(x["id"].get_string().value()), seen[i++]);
  }
}

TEST_F(HttpApiTest, InstanceIsWholeAndMarkupIsData) {
  Make();
  HttpResponse r = Get("/api/instances/coco/train/en/1");
  ASSERT_EQ(r.status, 200) << r.body;
  auto doc = Parse(r);
  auto x = doc["instance"];
  EXPECT_EQ(std::string(x["inputs"].get_string().value()), "<script>window.injected=1</script>");
  EXPECT_EQ(r.body.find("<script>"), std::string::npos) << "markup is escaped in the JSON text";
  // The instance has no instruction of its own: one from the pool, and the pool is shown.
  EXPECT_TRUE(doc["instruction_from_pool"].get_bool().value());
  EXPECT_EQ(doc["instruction_pool"].get_array().size(), 2u);
  EXPECT_EQ(std::string(doc["task"]["license"].get_string().value()), "CC-BY-4.0");
  EXPECT_EQ(std::string(doc["source"]["file"].get_string().value()), "coco/train.jsonl");
  EXPECT_EQ(doc["source"]["line"].get_uint64().value(), 2u);
  // Whole texts here; shortened in the list.
  r = Get("/api/instances/coco/train/en/0");
  EXPECT_EQ(Parse(r)["instance"]["inputs"].get_string().value().size(), 501u);
  r = Get("/api/instances", {{"tasks", "coco"}, {"page_size", "1"}});
  EXPECT_LT(Parse(r)["instances"].at(0)["inputs"].get_string().value().size(), 400u);
  // Video: every frame, in order.
  r = Get("/api/instances/msrvtt/test/en/1");
  auto frames = Parse(r)["instance"]["images"].get_array();
  ASSERT_EQ(frames.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(std::string(frames.at(i)["content_hash"].get_string().value()), images_[(1 + i) % images_.size()].Hex());
  }
}

TEST_F(HttpApiTest, ImagesAndThumbnails) {
  Make();
  const std::string hash = images_[2].Hex();
  HttpResponse r = Get("/api/images/" + hash);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "image/png");
  EXPECT_EQ(r.body, Png(60, 40, 2));
  r = Get("/api/images/" + hash, {{"size", "32"}, {"instance", "coco/train/en/2"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "image/jpeg");
  cv::Mat m = cv::imdecode(cv::Mat(1, static_cast<int>(r.body.size()), CV_8U, r.body.data()), cv::IMREAD_COLOR);
  EXPECT_EQ(m.cols, 32);
  std::string etag;
  for (const auto& [k, v] : r.headers) {
    if (k == "ETag") etag = v;
  }
  ASSERT_FALSE(etag.empty());
  HttpRequest again;
  again.method = "GET";
  again.path = "/api/images/" + hash;
  again.query = {{"size", "32"}};
  again.if_none_match = etag;
  EXPECT_EQ(api_->Handle(again).status, 304);
  // An instance that does not show the image.
  EXPECT_EQ(ErrorParameter(Get("/api/images/" + hash, {{"instance", "coco/train/en/0"}}), 400), "instance");
}

TEST_F(HttpApiTest, BadParametersAreNamed) {
  Make();
  EXPECT_EQ(ErrorParameter(Get("/api/instances", {{"tasks", "no-such-task"}}), 400), "tasks");
  EXPECT_EQ(ErrorParameter(Get("/api/count", {{"languages", "xx"}}), 400), "languages");
  EXPECT_EQ(ErrorParameter(Get("/api/instances", {{"page_size", "1000000000"}}), 400), "page_size");
  EXPECT_EQ(ErrorParameter(Get("/api/instances", {{"page_size", "0"}}), 400), "page_size");
  EXPECT_EQ(ErrorParameter(Get("/api/instances", {{"page", "-1"}}), 400), "page");
  EXPECT_EQ(ErrorParameter(Get("/api/instances", {{"seed", "abc"}}), 400), "seed");
  EXPECT_EQ(ErrorParameter(Get("/api/instances", {{"modality", "audio"}}), 400), "modality");
  EXPECT_EQ(ErrorParameter(Get("/api/instances", {{"held_out", "maybe"}}), 400), "held_out");
  EXPECT_EQ(ErrorParameter(Get("/api/instances", {{"exclude_eval_images", "perhaps"}}), 400), "exclude_eval_images");
  EXPECT_EQ(ErrorParameter(Get("/api/instances", {{"colour", "red"}}), 400), "colour");
  EXPECT_EQ(ErrorParameter(Get("/api/instances/not-an-id"), 400), "id");
  EXPECT_EQ(ErrorParameter(Get("/api/instances/coco/train/en/x"), 400), "id");
  EXPECT_EQ(ErrorParameter(Get("/api/instances/coco/train/en/999"), 404), "id");
  EXPECT_EQ(ErrorParameter(Get("/api/instances/nosuch/train/en/0"), 404), "id");
  EXPECT_EQ(ErrorParameter(Get("/api/images/xyz"), 400), "hash");
  EXPECT_EQ(ErrorParameter(Get("/api/images/" + std::string(32, 'a')), 404), "hash");
  EXPECT_EQ(ErrorParameter(Get("/api/images/" + images_[0].Hex(), {{"size", "5000"}}), 400), "size");
  EXPECT_EQ(ErrorParameter(Get("/api/images/" + images_[0].Hex(), {{"size", "3"}}), 400), "size");
  // The hash is the path's, not a parameter.
  EXPECT_EQ(ErrorParameter(Get("/api/images/" + images_[0].Hex(), {{"hash", images_[1].Hex()}}), 400), "hash");
  EXPECT_EQ(ErrorParameter(Get("/api/catalog", {{"x", "1"}}), 400), "x");
  EXPECT_EQ(ErrorParameter(Get("/api/nothing"), 404), "");
  EXPECT_EQ(ErrorParameter(Get("/nothing.html"), 404), "");
  EXPECT_EQ(ErrorParameter(Get("/api/instances", {{"seed", "1"}, {"seed", "2"}}), 400), "seed");
  HttpRequest post;
  post.method = "POST";
  post.path = "/api/catalog";
  EXPECT_EQ(api_->Handle(post).status, 405);
  // Beyond the page count: an empty page, not an error.
  HttpResponse r = Get("/api/instances", {{"page", "100000"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Parse(r)["instances"].get_array().size(), 0u);
}

TEST_F(HttpApiTest, PolicyAndTokensApply) {
  HttpApiOptions o;
  auto tokens = TokenTable::Load(WriteTempFile("http_tokens", R"({"tokens": [
      {"token": "cccccccccccccccc-narrow", "identity": "narrow", "allowed_licenses": ["CC-BY-4.0"]},
      {"token": "dddddddddddddddd-wide", "identity": "wide"}]})"));
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  o.tokens = std::make_shared<const TokenTable>(std::move(*tokens));
  Make(o);
  const std::string narrow = "cccccccccccccccc-narrow", wide = "dddddddddddddddd-wide";
  EXPECT_EQ(Get("/api/catalog").status, 401);
  EXPECT_EQ(Get("/api/catalog", {}, "wrong-token-0000000").status, 401);
  EXPECT_TRUE(Parse(Get("/api"))["tokens_required"].get_bool().value());
  std::set<std::string> tasks;
  for (auto t : Parse(Get("/api/catalog", {}, narrow))["tasks"].get_array()) {
    tasks.insert(std::string(t["name"].get_string().value()));
  }
  EXPECT_EQ(tasks, (std::set<std::string>{"coco", "msrvtt"}));
  HttpResponse r = Get("/api/instances", {{"page_size", "100"}}, narrow);
  ASSERT_EQ(r.status, 200);
  for (auto x : Parse(r)["instances"].get_array()) EXPECT_NE(std::string(x["task"].get_string().value()), "vqa-v2");
  EXPECT_EQ(ErrorParameter(Get("/api/instances", {{"tasks", "vqa-v2"}}, narrow), 403), "tasks");
  EXPECT_EQ(ErrorParameter(Get("/api/instances/vqa-v2/train/en/0", {}, narrow), 403), "id");
  EXPECT_EQ(Get("/api/instances/vqa-v2/train/en/0", {}, wide).status, 200);
  // Images: the narrow token names an instance it sees; one of vqa-v2 is refused.
  const std::string vqa_image = instances_[15].images[0].Hex();
  ASSERT_EQ(instances_[15].group.task, "vqa-v2");
  EXPECT_EQ(ErrorParameter(Get("/api/images/" + vqa_image, {}, narrow), 400), "instance");
  EXPECT_EQ(ErrorParameter(Get("/api/images/" + vqa_image, {{"instance", instances_[15].Id()}}, narrow), 403),
            "instance");
  EXPECT_EQ(Get("/api/images/" + vqa_image, {}, wide).status, 200);
  EXPECT_EQ(Get("/api/images/" + instances_[0].images[0].Hex(), {{"instance", instances_[0].Id()}}, narrow).status,
            200);
  // The page itself needs no token (it asks for one); /metrics neither.
  EXPECT_EQ(Get("/").status, 200);
  EXPECT_EQ(Get("/metrics").status, 200);
}

TEST_F(HttpApiTest, ServerPolicyNarrowsEveryone) {
  LicensePolicy policy;
  policy.excluded_tasks.insert("msrvtt");
  Make({}, policy);
  EXPECT_EQ(ErrorParameter(Get("/api/instances/msrvtt/test/en/0"), 403), "id");
  auto doc = Parse(Get("/api/instances", {{"page_size", "100"}}));
  EXPECT_EQ(doc["total"].get_uint64().value(), 21u);
}

TEST_F(HttpApiTest, PageAndBrowserSwitch) {
  Make();
  HttpResponse r = Get("/");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_THAT(r.body, HasSubstr("/static/app.js"));
  bool csp = false;
  for (const auto& [k, v] : r.headers) csp = csp || (k == "Content-Security-Policy" && v.find("script-src 'self'") != std::string::npos);
  EXPECT_TRUE(csp);
  EXPECT_EQ(Get("/static/app.js").content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(Get("/static/style.css").status, 200);
  HttpApiOptions off;
  off.browser = false;
  Make(off);
  EXPECT_EQ(Get("/").status, 404);
  EXPECT_EQ(Get("/api/catalog").status, 404);
  r = Get("/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("m3serve_streams_total"));
  // Requests are counted by endpoint and status, never by path.
  Get("/api/instances/a/b/c/0");
  Get("/some/random/path");
  r = Get("/metrics");
  EXPECT_THAT(r.body, HasSubstr(R"(m3serve_http_requests_total{endpoint="instance",status="404"} 1)"));
  EXPECT_THAT(r.body, HasSubstr(R"(m3serve_http_requests_total{endpoint="other",status="404"} 1)"));
  EXPECT_THAT(r.body, ::testing::Not(HasSubstr("random")));
}

}  // namespace
}  // namespace m3serve::server
