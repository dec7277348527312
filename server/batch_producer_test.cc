#include "server/batch_producer.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <set>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/worker_pool.h"

namespace m3serve::server {
namespace {

using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kKey[] = "batch-producer-test-key";

// A JPEG of w x h with a pattern that depends on `seed`.
std::string Jpeg(int w, int h, int seed) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) m.at<cv::Vec3b>(y, x) = cv::Vec3b(x * 7 + seed, y * 5, (x + y + seed) % 256);
  }
  std::vector<uchar> out;
  cv::imencode(".jpg", m, out);
  return {out.begin(), out.end()};
}

// A dataset of one task, `n` instances in one group, each with one of three
// real JPEGs, held by an in-memory reader.
struct Fixture {
  std::unique_ptr<Dataset> dataset;
  MemoryReader* reader = nullptr;
  storage::GroupKey group{"alpha", "train", "en"};

  explicit Fixture(uint64_t n, int image_side = 64) {
    auto r = std::make_unique<MemoryReader>();
    reader = r.get();
    std::vector<Hash128> images;
    for (int i = 0; i < 3; ++i) images.push_back(r->AddImage(Jpeg(image_side, image_side * 3 / 4, i * 40)));
    storage::Catalog c;
    c.tasks["alpha"] = {"alpha", "vqa", "Alpha", "CC BY 4.0", storage::CommercialUse::kYes, false,
                        storage::Modality::kImage, "en"};
    c.counts[group] = n;
    c.unique_images = images.size();
    c.fingerprint = ContentHash("fixture/" + std::to_string(n));
    for (uint64_t k = 0; k < n; ++k) {
      storage::Instance x;
      x.group = group;
      x.ordinal = k;
      x.instruction = "Answer.";
      x.inputs = "question " + std::to_string(k);
      x.outputs = "answer " + std::to_string(k);
      x.images = {images[k % images.size()]};
      r->Add(std::move(x));
    }
    dataset = Dataset::FromCatalog(std::move(c), {}, std::move(r));
  }

  std::shared_ptr<const StreamPlan> Plan(PlanParams p = {}) const {
    auto sel = dataset->Resolve({});
    EXPECT_THAT(sel, IsOk());
    auto plan = StreamPlan::Create(std::make_shared<const ResolvedSelection>(std::move(*sel)), p,
                                   dataset->version(), kKey);
    EXPECT_THAT(plan, IsOk());
    return std::make_shared<const StreamPlan>(std::move(*plan));
  }
};

// Tasks queued by producers, run when (and in the order) the test says.
class ManualRunner {
 public:
  TaskRunner runner() {
    return [this](std::function<void()> task) { tasks_.push_back(std::move(task)); };
  }
  size_t queued() const { return tasks_.size(); }
  // Run the queued task at `i` (tasks may queue more).
  void RunAt(size_t i) {
    auto task = std::move(tasks_[i]);
    tasks_.erase(tasks_.begin() + static_cast<std::ptrdiff_t>(i));
    task();
  }
  void RunAll() {
    while (!tasks_.empty()) RunAt(0);
  }
  void DropAll() { tasks_.clear(); }

 private:
  std::deque<std::function<void()>> tasks_;
};

ProducerOptions Options(ImageMode mode, uint32_t batch_size) {
  ProducerOptions o;
  o.build.images = mode;
  if (mode == ImageMode::kDecoded) o.build.target = {32, 32, ResizeMode::kStretch};
  o.batch_size = batch_size;
  return o;
}

// Pull everything ready; appends messages to `out`. Returns the last answer.
BatchProducer::Pulled PullReady(BatchProducer& p, std::vector<std::unique_ptr<v1::InstanceBatch>>* out,
                                absl::Status* status) {
  while (true) {
    std::unique_ptr<v1::InstanceBatch> m;
    auto r = p.Pull(&m, status);
    if (r != BatchProducer::Pulled::kMessage) return r;
    out->push_back(std::move(m));
  }
}

// Property: whatever the window, budget, chunk sizes, message cap, image mode,
// view and the order the tasks run in, the messages carry positions
// [begin, end) exactly once and in order, each message's next_position and
// resume token point just past its last instance, every message stays under
// the cap unless it holds one instance, and the budget is given back in full.
TEST(BatchProducerTest, EveryPositionOnceInOrderWhateverTheTaskOrder) {
  std::mt19937_64 rng(20261202);
  for (int round = 0; round < 60; ++round) {
    const uint64_t n = rng() % 120;
    Fixture f(n);
    PlanParams pp;
    pp.order.shuffled = rng() % 2;
    pp.order.seed = rng();
    pp.shard_count = 1 + static_cast<uint32_t>(rng() % 3);
    pp.shard_index = static_cast<uint32_t>(rng() % pp.shard_count);
    auto plan = f.Plan(pp);
    const uint64_t begin = plan->shard_size() == 0 ? 0 : rng() % (plan->shard_size() + 1);
    const uint64_t end = begin + (plan->shard_size() == begin ? 0 : rng() % (plan->shard_size() - begin + 1));
    const ImageMode mode = static_cast<ImageMode>(rng() % 3);
    ProducerOptions o = Options(mode, 1 + static_cast<uint32_t>(rng() % 40));
    o.message_bytes = 200 + rng() % 20000;
    o.prefetch_chunks = static_cast<int>(rng() % 4);
    o.first_chunk = 1 + rng() % 6;
    ServingBudget budget(static_cast<int64_t>(1 + rng() % 3) << 20);
    ManualRunner run;
    auto p = BatchProducer::Create(f.dataset.get(), plan, begin, end, o, &budget, run.runner(), nullptr);
    int wakes = 0;
    p->Start([&] { ++wakes; });
    std::vector<std::unique_ptr<v1::InstanceBatch>> got;
    absl::Status status;
    BatchProducer::Pulled last = BatchProducer::Pulled::kWait;
    for (int steps = 0; steps < 100000; ++steps) {
      if (rng() % 2 == 0 || run.queued() == 0) {
        last = PullReady(*p, &got, &status);
        if (last != BatchProducer::Pulled::kWait) break;
      }
      if (run.queued() > 0) run.RunAt(rng() % run.queued());
    }
    SCOPED_TRACE(::testing::Message() << "round " << round << " n=" << n << " [" << begin << ", " << end
                                      << ") batch=" << o.batch_size << " message_bytes=" << o.message_bytes);
    ASSERT_EQ(last, BatchProducer::Pulled::kEnd) << status;
    uint64_t next = begin;
    std::set<std::string> ids;
    for (const auto& m : got) {
      ASSERT_GT(m->instances_size(), 0);
      uint64_t payload = 0;
      for (const auto& x : m->instances()) {
        EXPECT_EQ(x.shard_position(), next++);
        EXPECT_TRUE(ids.insert(x.id()).second) << "duplicate " << x.id();
        EXPECT_EQ(x.sample_index(), plan->Sample(x.shard_position()));
        ASSERT_EQ(x.images_size(), 1);
        EXPECT_EQ(x.images(0).data().empty(), mode == ImageMode::kNone);
        if (mode == ImageMode::kDecoded) EXPECT_EQ(x.images(0).data().size(), 32u * 32 * 3);
        payload += x.ByteSizeLong() + 8;
      }
      if (m->instances_size() > 1) EXPECT_LE(payload, o.message_bytes);
      EXPECT_EQ(m->next_position(), next);
      EXPECT_EQ(m->shard_size(), plan->shard_size());
      EXPECT_EQ(m->plan_fingerprint(), plan->fingerprint());
      auto resumed = plan->Resume(m->resume_token());
      ASSERT_THAT(resumed, IsOk());
      EXPECT_EQ(*resumed, next);
    }
    EXPECT_EQ(next, end);
    EXPECT_EQ(p->held_bytes(), 0);
    EXPECT_EQ(budget.used(), 0);
    EXPECT_EQ(run.queued(), 0u);
    p.reset();
    EXPECT_EQ(budget.streams(), 0);
  }
}

// 16 streams at batch 4096 whose consumers never pull: each holds one chunk
// of about its share of the budget, the budget is never passed by more than
// that, and once their first chunks are built no more work is started.
TEST(BatchProducerTest, StalledStreamsHoldOneChunkEachAndDoNoMoreWork) {
  Fixture f(4096);
  auto plan = f.Plan();
  ServingBudget budget(8 << 20);
  ManualRunner run;
  ProducerOptions o = Options(ImageMode::kDecoded, 4096);
  o.build.target = {224, 224, ResizeMode::kStretch};
  std::vector<std::shared_ptr<BatchProducer>> streams;
  for (int i = 0; i < 16; ++i) {
    streams.push_back(BatchProducer::Create(f.dataset.get(), plan, 0, plan->shard_size(), o, &budget,
                                            run.runner(), nullptr));
  }
  for (auto& p : streams) p->Start([] {});
  run.RunAll();  // the first (small) chunks, then whatever the budget admits
  const uint64_t instance_bytes = 224 * 224 * 3 + 1024;
  const int64_t per_stream = ServingBudget::kMinShare + static_cast<int64_t>(instance_bytes);
  uint64_t chunks = 0;
  for (auto& p : streams) {
    EXPECT_LE(p->chunks_started(), 1u + static_cast<uint64_t>(o.prefetch_chunks));
    chunks += p->chunks_started();
  }
  EXPECT_LE(budget.used(), budget.limit() + 16 * per_stream);
  EXPECT_EQ(run.queued(), 0u) << "stalled streams must not queue more work";
  // Far less than one batch per stream was read.
  EXPECT_LT(f.reader->instance_reads(), 16u * 4096 / 8);
  const uint64_t reads = f.reader->instance_reads();
  run.RunAll();
  EXPECT_EQ(f.reader->instance_reads(), reads);

  // A consumer that resumes pulling gets its stream moving again.
  std::vector<std::unique_ptr<v1::InstanceBatch>> got;
  absl::Status status;
  EXPECT_EQ(PullReady(*streams[0], &got, &status), BatchProducer::Pulled::kWait);
  EXPECT_FALSE(got.empty());
  EXPECT_GT(run.queued(), 0u);
  for (auto& p : streams) p->Cancel();
  EXPECT_EQ(budget.used(), 0);
}

// The budget bounds what streams hold beyond their first chunk, over random
// stream counts, budgets and partial consumption.
TEST(BatchProducerTest, BudgetBoundsWhatStreamsHold) {
  std::mt19937_64 rng(7);
  Fixture f(600);
  auto plan = f.Plan();
  for (int round = 0; round < 20; ++round) {
    ServingBudget budget(static_cast<int64_t>(1 + rng() % 6) << 20);
    ManualRunner run;
    ProducerOptions o = Options(ImageMode::kDecoded, 1 + static_cast<uint32_t>(rng() % 512));
    o.build.target = {64 + static_cast<uint32_t>(rng() % 200), 64, ResizeMode::kStretch};
    o.prefetch_chunks = static_cast<int>(rng() % 4);
    const int count = 1 + static_cast<int>(rng() % 12);
    std::vector<std::shared_ptr<BatchProducer>> streams;
    for (int i = 0; i < count; ++i) {
      streams.push_back(BatchProducer::Create(f.dataset.get(), plan, 0, plan->shard_size(), o, &budget,
                                              run.runner(), nullptr));
      streams.back()->Start([] {});
    }
    const int64_t instance = static_cast<int64_t>(o.build.target.width * 64 * 3 + 1024);
    const int64_t first_chunks = count * (ServingBudget::kMaxShare + instance);
    for (int step = 0; step < 400 && run.queued() > 0; ++step) {
      run.RunAt(rng() % run.queued());
      if (rng() % 3 == 0) {
        std::unique_ptr<v1::InstanceBatch> m;
        absl::Status status;
        streams[rng() % count]->Pull(&m, &status);
      }
      int64_t held = 0;
      for (auto& p : streams) held += p->held_bytes();
      ASSERT_EQ(held, budget.used());
      ASSERT_LE(budget.used(), budget.limit() + first_chunks);
    }
    streams.clear();  // dropping a producer gives back what it held
    run.DropAll();
    EXPECT_EQ(budget.used(), 0);
  }
}

TEST(BatchProducerTest, UnreadableInstanceFailsAfterTheMessagesBeforeIt) {
  Fixture f(50);
  f.reader->Remove({f.group, 30});
  auto plan = f.Plan();
  ServingBudget budget(64 << 20);
  ManualRunner run;
  ProducerOptions o = Options(ImageMode::kNone, 8);
  o.first_chunk = 8;
  auto p = BatchProducer::Create(f.dataset.get(), plan, 0, plan->shard_size(), o, &budget, run.runner(), nullptr);
  p->Start([] {});
  std::vector<std::unique_ptr<v1::InstanceBatch>> got;
  absl::Status status;
  BatchProducer::Pulled r;
  do {
    run.RunAll();
    r = PullReady(*p, &got, &status);
  } while (r == BatchProducer::Pulled::kWait);
  ASSERT_EQ(r, BatchProducer::Pulled::kFailed);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("alpha/train/en/30")));
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back()->next_position(), 24u);  // the chunk [24, 32) failed as a whole
  p->Cancel();
  EXPECT_EQ(budget.used(), 0);
}

TEST(BatchProducerTest, InstanceAboveTheLargestMessageFailsPrecondition) {
  Fixture f(10, 256);
  auto plan = f.Plan();
  ServingBudget budget(64 << 20);
  ManualRunner run;
  ProducerOptions o = Options(ImageMode::kEncoded, 4);
  o.max_send_bytes = 2000;  // below one encoded 256x192 image
  auto p = BatchProducer::Create(f.dataset.get(), plan, 0, plan->shard_size(), o, &budget, run.runner(), nullptr);
  p->Start([] {});
  run.RunAll();
  std::vector<std::unique_ptr<v1::InstanceBatch>> got;
  absl::Status status;
  EXPECT_EQ(PullReady(*p, &got, &status), BatchProducer::Pulled::kFailed);
  EXPECT_TRUE(got.empty());
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition,
                               HasSubstr("above the largest message the server sends")));
}

TEST(BatchProducerTest, CancelGivesTheBudgetBackAndStopsQueuedWork) {
  Fixture f(300);
  auto plan = f.Plan();
  ServingBudget budget(64 << 20);
  ManualRunner run;
  auto p = BatchProducer::Create(f.dataset.get(), plan, 0, plan->shard_size(), Options(ImageMode::kDecoded, 64),
                                 &budget, run.runner(), nullptr);
  std::atomic<int> wakes{0};
  p->Start([&] { ++wakes; });
  ASSERT_GT(run.queued(), 0u);
  run.RunAt(0);
  EXPECT_EQ(wakes.load(), 1);
  EXPECT_GT(budget.used(), 0);
  const uint64_t reads = f.reader->instance_reads();
  p->Detach();
  p->Cancel();
  EXPECT_EQ(budget.used(), 0);
  std::weak_ptr<BatchProducer> weak = p;
  p.reset();
  EXPECT_FALSE(weak.expired()) << "queued tasks keep the producer alive";
  run.RunAll();
  EXPECT_TRUE(weak.expired());
  EXPECT_EQ(f.reader->instance_reads(), reads) << "cancelled work must not read";
  EXPECT_EQ(wakes.load(), 1) << "no wake after Detach";
  EXPECT_EQ(budget.used(), 0);
  EXPECT_EQ(budget.streams(), 0);
}

TEST(BatchProducerTest, EmptyRangeEndsAtOnce) {
  Fixture f(5);
  auto plan = f.Plan();
  ServingBudget budget(1 << 20);
  ManualRunner run;
  auto p = BatchProducer::Create(f.dataset.get(), plan, 5, 5, Options(ImageMode::kNone, 4), &budget,
                                 run.runner(), nullptr);
  p->Start([] {});
  std::unique_ptr<v1::InstanceBatch> m;
  absl::Status status;
  EXPECT_EQ(p->Pull(&m, &status), BatchProducer::Pulled::kEnd);
  EXPECT_EQ(run.queued(), 0u);
}

// A consumer per stream pulling from its wake, on the real fair worker pool
// with several threads: every stream gets all of its positions exactly once.
TEST(BatchProducerTest, ConcurrentStreamsOnTheWorkerPool) {
  Fixture f(400);
  auto plan = f.Plan({.order = {.shuffled = true, .seed = 5}});
  ServingBudget budget(2 << 20);
  WorkerPool pool(3);
  struct Consumer {
    std::mutex mu;
    std::vector<uint64_t> positions;
    bool ended = false;
    absl::Status status;
  };
  constexpr int kStreams = 8;
  std::vector<Consumer> consumers(kStreams);
  std::vector<std::shared_ptr<BatchProducer>> streams;
  std::mutex done_mu;
  std::condition_variable done_cv;
  int ended = 0;
  for (int i = 0; i < kStreams; ++i) {
    FairKey key{i % 2 ? "odd" : "even", static_cast<uint64_t>(i)};
    streams.push_back(BatchProducer::Create(
        f.dataset.get(), plan, 0, plan->shard_size(), Options(ImageMode::kDecoded, 16), &budget,
        [&pool, key](std::function<void()> t) { pool.Submit(key, std::move(t)); }, nullptr));
  }
  for (int i = 0; i < kStreams; ++i) {
    Consumer& c = consumers[i];
    BatchProducer* p = streams[i].get();
    auto pull = [&c, p, &done_mu, &done_cv, &ended] {
      std::lock_guard<std::mutex> lock(c.mu);
      if (c.ended) return;
      std::vector<std::unique_ptr<v1::InstanceBatch>> got;
      auto r = PullReady(*p, &got, &c.status);
      for (const auto& m : got) {
        for (const auto& x : m->instances()) c.positions.push_back(x.shard_position());
      }
      if (r != BatchProducer::Pulled::kWait) {
        c.ended = true;
        std::lock_guard<std::mutex> l(done_mu);
        ++ended;
        done_cv.notify_all();
      }
    };
    p->Start(pull);
    pull();
  }
  {
    std::unique_lock<std::mutex> lock(done_mu);
    ASSERT_TRUE(done_cv.wait_for(lock, std::chrono::seconds(120), [&] { return ended == kStreams; }));
  }
  for (auto& p : streams) p->Detach();
  for (auto& c : consumers) {
    EXPECT_THAT(c.status, IsOk());
    ASSERT_EQ(c.positions.size(), plan->shard_size());
    for (uint64_t j = 0; j < c.positions.size(); ++j) EXPECT_EQ(c.positions[j], j);
  }
  EXPECT_EQ(budget.used(), 0);
}

}  // namespace
}  // namespace m3serve::server
