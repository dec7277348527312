// Integration tests of m3serve-server and the C++ client library: real server
// processes on 127.0.0.1 over a store built from the sample dataset.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_cat.h"
#include "client/dataset_client.h"
#include "common/hash.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "storage/store.h"
#include "tests/process.h"
#include "tests/server_process.h"

namespace m3serve::tests {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::m3serve::v1;

// Everything one stream delivered.
struct Drained {
  std::vector<std::string> ids;
  std::vector<v1::Instance> instances;
  uint64_t shard_size = 0;
  int batches = 0;
  int reconnects = 0;
  absl::Status status;
};

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScopedTempDir("serve");
    ASSERT_EQ(RunCommand({Bin("m3serve-admin"), "sample", "--out", *dir_ / "sample", "--scale", "3"}).exit_code, 0);
    CommandResult ing = RunCommand({Bin("m3serve-admin"), "ingest", "--db", Db(), "--progress", "none",
                                    *dir_ / "sample/M3IT", *dir_ / "sample/M3IT-80"});
    ASSERT_EQ(ing.exit_code, 0) << ing.out << ing.err;
    server_ = new ServerProcess(Db(), *dir_ / "main");
    std::string err;
    ASSERT_TRUE(server_->Start(&err)) << err;
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }
  static std::string Db() { return *dir_ / "store"; }

  static std::unique_ptr<client::DatasetClient> Client(std::vector<std::string> targets = {}) {
    client::ClientOptions o;
    o.targets = targets.empty() ? std::vector<std::string>{server_->target()} : targets;
    o.initial_backoff = absl::Milliseconds(50);
    o.max_backoff = absl::Milliseconds(500);
    auto c = client::DatasetClient::Create(o);
    EXPECT_TRUE(c.ok());
    return std::move(*c);
  }

  static Drained Drain(client::DatasetClient& c, const v1::StreamRequest& req, int max_batches = -1) {
    Drained d;
    auto stream = c.Stream(req);
    v1::InstanceBatch b;
    while (max_batches < 0 || d.batches < max_batches) {
      auto more = stream->Next(&b);
      if (!more.ok()) {
        d.status = more.status();
        break;
      }
      if (!*more) break;
      ++d.batches;
      d.shard_size = b.shard_size();
      for (const auto& x : b.instances()) {
        d.ids.push_back(x.id());
        d.instances.push_back(x);
      }
    }
    d.reconnects = stream->reconnects();
    return d;
  }

  static v1::StreamRequest Request(uint32_t index, uint32_t count, bool shuffled, uint64_t seed = 0,
                                   uint64_t epoch = 0) {
    v1::StreamRequest r;
    r.mutable_sharding()->set_index(index);
    r.mutable_sharding()->set_count(count);
    r.set_order(shuffled ? v1::ORDER_SHUFFLED : v1::ORDER_SEQUENTIAL);
    r.set_seed(seed);
    r.set_epoch(epoch);
    r.set_batch_size(7);
    r.mutable_images()->set_mode(v1::IMAGE_MODE_NONE);
    return r;
  }

  static uint64_t Total() {
    auto cat = Client()->GetCatalog();
    EXPECT_TRUE(cat.ok());
    return cat->total_instances();
  }

  static ScopedTempDir* dir_;
  static ServerProcess* server_;
};
ScopedTempDir* ServeTest::dir_ = nullptr;
ServerProcess* ServeTest::server_ = nullptr;

TEST_F(ServeTest, CatalogAndCountMatchTheStore) {
  auto c = Client();
  auto cat = c->GetCatalog();
  ASSERT_TRUE(cat.ok()) << cat.status();
  auto store = storage::Store::Open({.path = Db(), .read_only = true});
  ASSERT_TRUE(store.ok());
  auto stored = (*store)->ReadCatalog();
  EXPECT_EQ(cat->total_instances(), stored->TotalInstances());
  EXPECT_EQ(cat->dataset_version(), stored->fingerprint.Hex());
  EXPECT_EQ(cat->counts_size(), static_cast<int>(stored->counts.size()));
  v1::Selection sel;
  sel.add_tasks("vqa-v2");
  sel.add_languages("fr");
  sel.add_languages("zh");
  auto count = c->Count(sel);
  ASSERT_TRUE(count.ok());
  const storage::GroupKey trfr{"vqa-v2", "train", "fr"}, vazh{"vqa-v2", "validation", "zh"};
  EXPECT_EQ(count->total(), stored->counts[trfr] * 2 + stored->counts[vazh] * 2);
  EXPECT_EQ(count->groups_size(), 4);
}

// The evaluation-leakage guard on the ingested sample (COCO-style images
// shared across tasks and splits), against a brute force over the store's
// instances: Count, shuffled and sharded streams, GetInstances and the
// attribution report all agree with it.
TEST_F(ServeTest, EvalGuardLeavesOutExactlyTheInstancesSharingAnEvaluationImage) {
  auto store = storage::Store::Open({.path = Db(), .read_only = true});
  ASSERT_TRUE(store.ok());
  for (const std::vector<std::string>& eval_splits :
       {std::vector<std::string>{}, std::vector<std::string>{"test"}}) {
    std::set<std::string> splits(eval_splits.begin(), eval_splits.end());
    if (splits.empty()) splits = {"validation", "test"};
    std::set<Hash128> eval_images;
    ASSERT_TRUE((*store)->ForEachInstance([&](storage::Instance&& x) {
      if (splits.count(x.group.split)) eval_images.insert(x.images.begin(), x.images.end());
      return true;
    }).ok());
    std::set<std::string> kept, left_out;
    std::map<std::string, uint64_t> losses;
    ASSERT_TRUE((*store)->ForEachInstance([&](storage::Instance&& x) {
      if (x.group.split != "train") return true;  // the selection: training splits
      bool shared = false;
      for (const auto& h : x.images) shared = shared || eval_images.count(h);
      (shared ? left_out : kept).insert(x.Id());
      if (shared) ++losses[x.group.task];
      return true;
    }).ok());
    ASSERT_GT(left_out.size(), 0u) << "the sample shares no image between splits";

    auto c = Client();
    v1::Selection sel;
    sel.add_splits("train");
    sel.set_exclude_eval_images(true);
    for (const auto& s : eval_splits) sel.add_eval_splits(s);
    auto count = c->Count(sel);
    ASSERT_TRUE(count.ok()) << count.status();
    EXPECT_EQ(count->total(), kept.size());
    EXPECT_EQ(count->eval_excluded(), left_out.size());
    std::map<std::string, uint64_t> got_losses;
    for (const auto& t : count->eval_excluded_by_task()) got_losses[t.task()] = t.instances();
    EXPECT_EQ(got_losses, losses);

    std::multiset<std::string> streamed;
    for (uint32_t i = 0; i < 3; ++i) {
      v1::StreamRequest r = Request(i, 3, true, 23);
      *r.mutable_selection() = sel;
      Drained d = Drain(*c, r);
      ASSERT_TRUE(d.status.ok()) << d.status;
      streamed.insert(d.ids.begin(), d.ids.end());
    }
    EXPECT_EQ(streamed, std::multiset<std::string>(kept.begin(), kept.end()));

    // Resume: a guarded stream cut after its first batch continues with its token
    // and ends with exactly the kept instances.
    v1::StreamRequest whole = Request(0, 1, true, 29);
    *whole.mutable_selection() = sel;
    Drained first = Drain(*c, whole, 1);
    ASSERT_TRUE(first.status.ok()) << first.status;
    v1::StreamRequest rest = whole;
    {
      auto stream = c->Stream(whole);
      v1::InstanceBatch b;
      ASSERT_TRUE(*stream->Next(&b));
      rest.set_resume_token(b.resume_token());
      stream->Cancel();
    }
    Drained second = Drain(*c, rest);
    ASSERT_TRUE(second.status.ok()) << second.status;
    std::multiset<std::string> resumed(first.ids.begin(), first.ids.end());
    resumed.insert(second.ids.begin(), second.ids.end());
    EXPECT_EQ(resumed, std::multiset<std::string>(kept.begin(), kept.end()));
    // The token is tied to the guard: the unguarded selection refuses it.
    v1::StreamRequest unguarded = rest;
    unguarded.mutable_selection()->set_exclude_eval_images(false);
    unguarded.mutable_selection()->clear_eval_splits();
    EXPECT_EQ(Drain(*c, unguarded).status.code(), absl::StatusCode::kInvalidArgument);

    // A temperature mixture over the guarded selection: each task's component
    // holds the task's kept instances.
    v1::StreamRequest mix = whole;
    mix.mutable_mixture()->set_temperature(1);
    auto plan = c->Plan(mix);
    ASSERT_TRUE(plan.ok()) << plan.status();
    std::map<std::string, uint64_t> kept_per_task, planned;
    for (const auto& id : kept) ++kept_per_task[id.substr(0, id.find('/'))];
    for (const auto& comp : plan->components()) planned[comp.key()] = comp.instances();
    EXPECT_EQ(planned, kept_per_task);

    v1::GetInstancesRequest get;
    *get.mutable_selection() = sel;
    get.mutable_images()->set_mode(v1::IMAGE_MODE_NONE);
    get.add_ids(*kept.begin());
    EXPECT_TRUE(c->GetInstances(get).ok());
    get.add_ids(*left_out.begin());
    auto refused = c->GetInstances(get);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(refused.status().message(), HasSubstr("ids[1]: instance " + *left_out.begin()));
    EXPECT_THAT(refused.status().message(), HasSubstr("shares an image with the evaluation set"));

    v1::AttributionRequest attribution;
    *attribution.mutable_selection() = sel;
    attribution.set_format(v1::REPORT_FORMAT_MARKDOWN);
    auto report = c->Attribution(attribution);
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(report->instances(), count->total());
    uint64_t sum = 0;
    for (const auto& s : report->sources()) sum += s.instances();
    EXPECT_EQ(sum, count->total());
    EXPECT_THAT(report->report(), HasSubstr("| Source dataset |"));
  }
}

// Attribution reports are built one at a time on the worker pool: concurrent
// calls queue, and each gets the same report as a call made alone.
TEST_F(ServeTest, ConcurrentAttributionCallsAllGetTheirReport) {
  v1::AttributionRequest req;
  req.mutable_selection()->add_splits("train");
  req.set_format(v1::REPORT_FORMAT_JSON);
  auto alone = Client()->Attribution(req);
  ASSERT_TRUE(alone.ok()) << alone.status();
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<v1::AttributionResponse>> got(8, absl::UnknownError("not run"));
  for (size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] { got[i] = Client()->Attribution(req); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : got) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->report(), alone->report());
    EXPECT_EQ(r->instances(), alone->instances());
  }
}

TEST_F(ServeTest, ShardsAreDisjointAndComplete) {
  auto c = Client();
  const uint64_t total = Total();
  for (bool shuffled : {false, true}) {
    for (uint32_t count : {1u, 3u, 8u}) {
      std::multiset<std::string> all;
      uint64_t min_size = ~0ull, max_size = 0;
      for (uint32_t i = 0; i < count; ++i) {
        Drained d = Drain(*c, Request(i, count, shuffled, 17, 2));
        ASSERT_TRUE(d.status.ok()) << d.status;
        EXPECT_EQ(d.ids.size(), d.shard_size);
        min_size = std::min<uint64_t>(min_size, d.ids.size());
        max_size = std::max<uint64_t>(max_size, d.ids.size());
        all.insert(d.ids.begin(), d.ids.end());
      }
      EXPECT_EQ(all.size(), total) << "count " << count;
      EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), total) << "duplicates";
      EXPECT_LE(max_size - min_size, 1u);
    }
  }
  // drop_remainder: exactly floor(N / count) each.
  for (uint32_t i = 0; i < 8; ++i) {
    v1::StreamRequest r = Request(i, 8, true, 5);
    r.mutable_sharding()->set_drop_remainder(true);
    EXPECT_EQ(Drain(*c, r).ids.size(), total / 8);
  }
}

TEST_F(ServeTest, SameOrderOnTwoServersAnotherForAnotherEpoch) {
  ServerProcess second(Db(), *dir_ / "second");
  std::string err;
  ASSERT_TRUE(second.Start(&err)) << err;
  auto a = Client({server_->target()});
  auto b = Client({second.target()});
  Drained x = Drain(*a, Request(1, 3, true, 17, 2));
  Drained y = Drain(*b, Request(1, 3, true, 17, 2));
  Drained z = Drain(*b, Request(1, 3, true, 17, 3));
  ASSERT_TRUE(x.status.ok() && y.status.ok() && z.status.ok());
  EXPECT_EQ(x.ids, y.ids);
  EXPECT_NE(x.ids, z.ids);
  EXPECT_EQ(std::set<std::string>(x.ids.begin(), x.ids.end()).size(), x.ids.size());
}

TEST_F(ServeTest, CancelThenResumeWithTheToken) {
  auto c = Client();
  v1::StreamRequest req = Request(0, 2, true, 9, 1);
  Drained full = Drain(*c, req);
  ASSERT_TRUE(full.status.ok());
  // Take three batches, cancel, resume from the last token.
  std::vector<std::string> got;
  std::string token;
  {
    auto stream = c->Stream(req);
    v1::InstanceBatch b;
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(*stream->Next(&b));
      for (const auto& x : b.instances()) got.push_back(x.id());
    }
    token = stream->resume_token();
    stream->Cancel();
  }
  req.set_resume_token(token);
  Drained rest = Drain(*c, req);
  ASSERT_TRUE(rest.status.ok()) << rest.status;
  got.insert(got.end(), rest.ids.begin(), rest.ids.end());
  EXPECT_EQ(got, full.ids);  // 0 duplicates, 0 gaps, same order
  // A limit stops early; the token continues exactly after it.
  v1::StreamRequest limited = Request(0, 2, true, 9, 1);
  limited.set_limit(10);
  Drained first10 = Drain(*c, limited);
  EXPECT_EQ(first10.ids, std::vector<std::string>(full.ids.begin(), full.ids.begin() + 10));
  // start_position continues at a counted position without a token.
  v1::StreamRequest skip = Request(0, 2, true, 9, 1);
  skip.set_start_position(10);
  Drained after10 = Drain(*c, skip);
  EXPECT_EQ(after10.ids, std::vector<std::string>(full.ids.begin() + 10, full.ids.end()));
  // At or past the end: an empty stream, not an error (a checkpoint taken at
  // the end of an epoch resumes to nothing).
  for (uint64_t at : {full.ids.size(), full.ids.size() + 1}) {
    skip.set_start_position(at);
    Drained none = Drain(*c, skip);
    EXPECT_TRUE(none.status.ok()) << none.status;
    EXPECT_TRUE(none.ids.empty());
  }
}

// A mixture streamed through a training job's schedule view: the ranks'
// streams together are the epoch's global sequence once, each component
// drawn exactly its planned number of times, as Plan says beforehand.
TEST_F(ServeTest, MixtureScheduleStreamsMatchThePlan) {
  auto c = Client();
  v1::StreamRequest req = Request(0, 1, true, 5, 1);
  req.clear_sharding();
  auto* mix = req.mutable_mixture();
  auto* coco = mix->add_components();
  coco->set_key("coco");
  coco->set_weight(1);
  auto* rest = mix->add_components();
  rest->set_key("*");
  rest->set_weight(2);
  mix->set_epoch_size(101);
  req.mutable_schedule()->set_world_size(2);
  req.mutable_schedule()->set_batch_size(4);
  req.mutable_schedule()->set_num_workers(1);
  auto plan = c->Plan(req);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->epoch_samples(), 101u);
  std::map<std::string, uint64_t> want, got;
  for (const auto& x : plan->components()) want[x.key()] = x.samples();
  EXPECT_GT(want.size(), 2u);  // coco and every other task, one component each
  std::set<uint64_t> samples;
  for (uint32_t rank = 0; rank < 2; ++rank) {
    req.mutable_schedule()->set_rank(rank);
    auto view = c->Plan(req);
    ASSERT_TRUE(view.ok()) << view.status();
    Drained d = Drain(*c, req);
    ASSERT_TRUE(d.status.ok()) << d.status;
    EXPECT_EQ(d.instances.size(), view->view_instances());
    for (const auto& x : d.instances) {
      EXPECT_TRUE(samples.insert(x.sample_index()).second) << "sample " << x.sample_index() << " twice";
      // Rank r takes the r-th 4 of every step of 8.
      EXPECT_EQ(x.sample_index() / 4 % 2, rank);
      ++got[x.component()];
    }
  }
  EXPECT_EQ(samples.size(), 101u);
  EXPECT_EQ(*samples.rbegin(), 100u);
  EXPECT_EQ(got, want);
  // A position counted under another plan is refused, not served.
  req.set_plan_fingerprint("00112233445566778899aabbccddeeff");
  Drained refused = Drain(*c, req);
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status.message(), HasSubstr("plan_fingerprint"));
  req.set_plan_fingerprint(plan->fingerprint());
  EXPECT_TRUE(Drain(*c, req).status.ok());
}

TEST_F(ServeTest, ServerKilledAndRestartedMidStream) {
  ServerProcess victim(Db(), *dir_ / "victim");
  std::string err;
  ASSERT_TRUE(victim.Start(&err)) << err;
  auto c = Client({victim.target()});
  v1::StreamRequest req = Request(1, 2, true, 21, 4);
  req.set_batch_size(3);
  // Decoded 256x256: more bytes than transport buffers hold, so the kill lands mid-stream.
  req.mutable_images()->set_mode(v1::IMAGE_MODE_DECODED);
  req.mutable_images()->set_width(256);
  req.mutable_images()->set_height(256);
  Drained want = Drain(*c, req);
  ASSERT_TRUE(want.status.ok());

  auto stream = c->Stream(req);
  std::vector<std::string> got;
  v1::InstanceBatch b;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(*stream->Next(&b));
    for (const auto& x : b.instances()) got.push_back(x.id());
  }
  victim.Stop(SIGKILL);
  ASSERT_TRUE(victim.Start(&err)) << err;  // same port
  while (true) {
    auto more = stream->Next(&b);
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    for (const auto& x : b.instances()) got.push_back(x.id());
  }
  EXPECT_EQ(got, want.ids);
  EXPECT_GE(stream->reconnects(), 1);
}

TEST_F(ServeTest, FailsOverToAnotherReplica) {
  ServerProcess a(Db(), *dir_ / "fa"), b(Db(), *dir_ / "fb");
  std::string err;
  ASSERT_TRUE(a.Start(&err)) << err;
  ASSERT_TRUE(b.Start(&err)) << err;
  auto c = Client({a.target(), b.target()});
  v1::StreamRequest req = Request(0, 1, true, 3, 0);
  req.set_batch_size(5);
  Drained want = Drain(*c, req);
  auto stream = c->Stream(req);
  std::vector<std::string> got;
  v1::InstanceBatch batch;
  ASSERT_TRUE(*stream->Next(&batch));
  for (const auto& x : batch.instances()) got.push_back(x.id());
  a.Stop(SIGKILL);
  b.Stop(SIGKILL);  // kill both; bring one back: the client finds it
  ASSERT_TRUE(b.Start(&err)) << err;
  while (true) {
    auto more = stream->Next(&batch);
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    for (const auto& x : batch.instances()) got.push_back(x.id());
  }
  EXPECT_EQ(got, want.ids);
}

TEST_F(ServeTest, PolicyExcludesAndRefuses) {
  const std::string policy = *dir_ / "policy.json";
  std::ofstream(policy) << R"({"allowed_commercial_use": ["yes", "unknown"], "excluded_tasks": ["gqa"]})";
  ServerProcess s(Db(), *dir_ / "policy", {"--policy", policy});
  std::string err;
  ASSERT_TRUE(s.Start(&err)) << err;
  auto c = Client({s.target()});
  Drained all = Drain(*c, Request(0, 1, false));
  ASSERT_TRUE(all.status.ok());
  for (const auto& x : all.instances) {
    EXPECT_NE(x.task(), "gqa");
    EXPECT_NE(x.task(), "coco-cn");     // Non-commercial, commercial use "no"
    EXPECT_NE(x.license(), "Non-commercial");
  }
  auto count = c->Count(v1::Selection());
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->total(), all.ids.size());
  EXPECT_THAT(std::vector<std::string>(count->removed_by_policy().begin(), count->removed_by_policy().end()),
              ::testing::IsSupersetOf({"coco-cn", "gqa", "snli-ve", "winoground"}));
  v1::StreamRequest ask = Request(0, 1, false);
  ask.mutable_selection()->add_tasks("gqa");
  Drained denied = Drain(*c, ask);
  EXPECT_EQ(denied.status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.status.message(), HasSubstr("selection.tasks"));
  v1::StreamRequest lic = Request(0, 1, false);
  lic.mutable_selection()->add_licenses("Non-commercial");
  // Non-commercial tasks exist in the store but the policy's commercial-use
  // levels remove them: asking for them selects nothing rather than failing.
  Drained none = Drain(*c, lic);
  EXPECT_TRUE(none.status.ok());
  EXPECT_TRUE(none.ids.empty());
  v1::GetInstancesRequest get;
  get.add_ids("gqa/train/en/0");
  EXPECT_EQ(c->GetInstances(get).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(ServeTest, DecodedPixelsEqualAnOpenCvDecodeOfTheStoredBytes) {
  auto c = Client();
  v1::GetInstancesRequest req;
  req.add_ids("gqa/train/en/0");     // PNG
  req.add_ids("coco/train/en/0");    // JPEG 96x72
  req.mutable_images()->set_mode(v1::IMAGE_MODE_ENCODED);
  auto enc = c->GetInstances(req);
  ASSERT_TRUE(enc.ok()) << enc.status();
  req.mutable_images()->set_mode(v1::IMAGE_MODE_DECODED);
  auto dec = c->GetInstances(req);
  ASSERT_TRUE(dec.ok()) << dec.status();
  req.mutable_images()->set_width(32);
  req.mutable_images()->set_height(24);
  req.mutable_images()->set_resize(v1::RESIZE_MODE_STRETCH);
  auto small = c->GetInstances(req);
  ASSERT_TRUE(small.ok()) << small.status();
  for (int i = 0; i < 2; ++i) {
    const v1::Image& e = enc->instances(i).images(0);
    EXPECT_EQ(ContentHash(e.data()).Hex(), e.content_hash());
    cv::Mat raw(1, static_cast<int>(e.data().size()), CV_8UC1, const_cast<char*>(e.data().data()));
    cv::Mat bgr = cv::imdecode(raw, cv::IMREAD_COLOR), rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    const v1::Image& d = dec->instances(i).images(0);
    ASSERT_EQ(d.format(), v1::Image::FORMAT_RGB8);
    ASSERT_EQ(int(d.width()), rgb.cols);
    ASSERT_EQ(int(d.height()), rgb.rows);
    EXPECT_EQ(d.channels(), 3u);
    EXPECT_EQ(d.data(), std::string(reinterpret_cast<char*>(rgb.data), rgb.total() * 3));
    // 96x72 -> 32x24: a JPEG is decoded at 1/2 (48x36, still >= 32x24), then resized.
    cv::Mat reduced = cv::imdecode(raw, e.format() == v1::Image::FORMAT_JPEG ? cv::IMREAD_REDUCED_COLOR_2
                                                                              : cv::IMREAD_COLOR);
    cv::Mat resized, want;
    cv::resize(reduced, resized, cv::Size(32, 24), 0, 0, cv::INTER_AREA);
    cv::cvtColor(resized, want, cv::COLOR_BGR2RGB);
    const v1::Image& s = small->instances(i).images(0);
    ASSERT_EQ(s.width(), 32u);
    ASSERT_EQ(s.height(), 24u);
    EXPECT_EQ(s.data(), std::string(reinterpret_cast<char*>(want.data), want.total() * 3));
  }
}

TEST_F(ServeTest, InstructionResamplingIsDeterministicAndFromThePool) {
  auto c = Client();
  auto store = storage::Store::Open({.path = Db(), .read_only = true});
  ASSERT_TRUE(store.ok());
  auto catalog = (*store)->ReadCatalog();
  v1::StreamRequest req = Request(0, 1, false, 11, 0);
  req.mutable_selection()->add_tasks("coco");
  req.mutable_selection()->add_tasks("vqa-v2");
  req.set_instructions(v1::INSTRUCTION_MODE_RESAMPLE);
  Drained a = Drain(*c, req), b = Drain(*c, req);
  req.set_epoch(1);
  Drained e1 = Drain(*c, req);
  ASSERT_TRUE(a.status.ok() && b.status.ok() && e1.status.ok());
  int differ = 0;
  for (size_t i = 0; i < a.instances.size(); ++i) {
    const auto& x = a.instances[i];
    EXPECT_EQ(x.instruction(), b.instances[i].instruction());
    differ += x.instruction() != e1.instances[i].instruction();
    const auto& pool = catalog->pools.at({x.task(), x.language()});
    EXPECT_THAT(pool, ::testing::Contains(x.instruction())) << x.id();
  }
  EXPECT_GT(differ, 0);
  // Rows without an instruction take one from the pool even when not resampling;
  // snli-ve's [HYPO] is replaced by the row's hypothesis.
  v1::GetInstancesRequest get;
  get.add_ids("coco/train/en/0");
  get.add_ids("snli-ve/train/en/0");
  get.mutable_images()->set_mode(v1::IMAGE_MODE_NONE);
  auto got = c->GetInstances(get);
  ASSERT_TRUE(got.ok());
  EXPECT_THAT(catalog->pools.at({"coco", "en"}), ::testing::Contains(got->instances(0).instruction()));
  EXPECT_THAT(got->instances(1).instruction(), ::testing::Not(HasSubstr("[HYPO]")));
  EXPECT_THAT(got->instances(1).instruction(), HasSubstr("Does the image entail the hypothesis"));
}

TEST_F(ServeTest, ByteCapSplitsBatches) {
  auto c = Client();
  v1::StreamRequest req = Request(0, 1, false);
  req.mutable_selection()->add_tasks("vist");
  req.mutable_images()->set_mode(v1::IMAGE_MODE_DECODED);
  req.set_batch_size(8);
  req.set_max_message_bytes(200 * 1000);
  auto stream = c->Stream(req);
  v1::InstanceBatch b;
  int messages = 0;
  uint64_t n = 0;
  while (*stream->Next(&b)) {
    ++messages;
    n += b.instances_size();
    if (b.instances_size() > 1) EXPECT_LE(b.ByteSizeLong(), 200u * 1000 + 4096);
  }
  EXPECT_GT(messages, static_cast<int>((n + 7) / 8));  // more messages than batches
}

TEST_F(ServeTest, BadRequestsGetTheRightCode) {
  auto c = Client();
  auto code_of = [&](v1::StreamRequest r) { return Drain(*c, r).status; };
  v1::StreamRequest r = Request(3, 3, false);
  EXPECT_EQ(code_of(r).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(code_of(r).message(), HasSubstr("sharding.index"));
  r = Request(0, 0, false);
  EXPECT_THAT(code_of(r).message(), HasSubstr("sharding.count"));
  r = Request(0, 1, false);
  r.set_batch_size(0);
  EXPECT_THAT(code_of(r).message(), HasSubstr("batch_size"));
  r.set_batch_size(100000);
  EXPECT_EQ(code_of(r).code(), absl::StatusCode::kInvalidArgument);
  r = Request(0, 1, false);
  r.set_order(static_cast<v1::Order>(42));
  EXPECT_THAT(code_of(r).message(), HasSubstr("order: unknown value 42"));
  r = Request(0, 1, false);
  r.set_resume_token("not a token");
  EXPECT_THAT(code_of(r).message(), HasSubstr("resume_token"));
  // A token of another request names the mismatch.
  auto stream = c->Stream(Request(0, 2, true, 1, 1));
  v1::InstanceBatch b;
  ASSERT_TRUE(*stream->Next(&b));
  r = Request(0, 2, true, 1, 2);
  r.set_resume_token(b.resume_token());
  absl::Status mismatch = code_of(r);
  EXPECT_EQ(mismatch.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mismatch.message(), HasSubstr("epoch 1"));
  std::string tampered = b.resume_token();
  tampered[10] ^= 0x40;
  r = Request(0, 2, true, 1, 1);
  r.set_resume_token(tampered);
  EXPECT_THAT(code_of(r).message(), HasSubstr("authentication failed"));
  r = Request(0, 1, false);
  r.mutable_selection()->add_tasks("no-such-task");
  EXPECT_EQ(code_of(r).code(), absl::StatusCode::kNotFound);
  r = Request(0, 1, false);
  r.mutable_selection()->add_languages("xx");
  EXPECT_EQ(code_of(r).code(), absl::StatusCode::kNotFound);
  v1::GetInstancesRequest get;
  get.add_ids("coco/train/en/999999");
  auto missing = c->GetInstances(get);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("ids[0]"));
  get.set_ids(0, "not-an-id");
  EXPECT_EQ(c->GetInstances(get).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ServeTest, StreamLimitGivesResourceExhausted) {
  ServerProcess s(Db(), *dir_ / "limited", {"--max-streams", "1"});
  std::string err;
  ASSERT_TRUE(s.Start(&err)) << err;
  auto channel = grpc::CreateChannel(s.target(), grpc::InsecureChannelCredentials());
  auto stub = v1::DatasetService::NewStub(channel);
  v1::StreamRequest req = Request(0, 1, false);
  // Large decoded images: the first stream cannot finish into transport
  // buffers, so it stays open (and counted) while the second is tried.
  req.mutable_images()->set_mode(v1::IMAGE_MODE_DECODED);
  req.mutable_images()->set_width(1024);
  req.mutable_images()->set_height(1024);
  req.set_batch_size(1);
  grpc::ClientContext first_ctx;
  auto first = stub->StreamInstances(&first_ctx, req);
  v1::InstanceBatch b;
  ASSERT_TRUE(first->Read(&b));  // the first stream is open and held
  grpc::ClientContext second_ctx;
  auto second = stub->StreamInstances(&second_ctx, req);
  EXPECT_FALSE(second->Read(&b));
  grpc::Status st = second->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(first->Read(&b));  // the existing stream is unaffected
  first_ctx.TryCancel();
  first->Finish().IgnoreError();
}

TEST_F(ServeTest, HealthReportsServing) {
  auto channel = grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(ServeTest, MetricsAreExposed) {
  auto c = Client();
  ASSERT_TRUE(Drain(*c, Request(0, 1, false)).status.ok());
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server_->metrics_port()));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::string req = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
  ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  std::string resp;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) resp.append(buf, n);
  close(fd);
  EXPECT_THAT(resp, HasSubstr("m3serve_instances_sent_total"));
  EXPECT_THAT(resp, HasSubstr("m3serve_streams_active"));
  EXPECT_THAT(resp, HasSubstr("m3serve_decode_seconds"));
}

TEST_F(ServeTest, SigtermDrainsAndExitsZero) {
  ServerProcess s(Db(), *dir_ / "drain", {"--drain-seconds", "10"});
  std::string err;
  ASSERT_TRUE(s.Start(&err)) << err;
  auto c = Client({s.target()});
  v1::StreamRequest req = Request(0, 1, false);
  req.set_batch_size(2);
  // Decoded 256x256 images: far more bytes than gRPC buffers, so the stream is
  // still being written when the signal arrives.
  req.mutable_images()->set_mode(v1::IMAGE_MODE_DECODED);
  req.mutable_images()->set_width(256);
  req.mutable_images()->set_height(256);
  Drained want = Drain(*c, req);
  auto stream = c->Stream(req);
  v1::InstanceBatch b;
  ASSERT_TRUE(*stream->Next(&b));
  std::vector<std::string> got;
  for (const auto& x : b.instances()) got.push_back(x.id());
  // SIGTERM while the stream is in flight: it still completes.
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CommandResult r = s.Stop(SIGTERM);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    EXPECT_THAT(r.out, HasSubstr("drained"));
    // The last stream ended during the drain, after the signal.
    EXPECT_LT(r.out.find("signal 15"), r.out.rfind("stream end")) << r.out;
  });
  while (true) {
    auto more = stream->Next(&b);
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    for (const auto& x : b.instances()) got.push_back(x.id());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stopper.join();
  EXPECT_EQ(got, want.ids);
  EXPECT_EQ(stream->reconnects(), 0);
}

}  // namespace
}  // namespace m3serve::tests
