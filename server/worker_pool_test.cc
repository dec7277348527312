#include "server/worker_pool.h"

#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace m3serve::server {
namespace {

// One worker, held busy while the test queues work, so the order in which
// the queued tasks run is exactly the pool's choice.
class FairnessTest : public ::testing::Test {
 protected:
  void Block() {
    pool_.Submit({"blocker", 0}, [this] { gate_.get_future().wait(); });
  }
  void Queue(const std::string& identity, uint64_t stream, int n) {
    for (int i = 0; i < n; ++i) {
      pool_.Submit({identity, stream}, [this, identity, stream] {
        std::lock_guard<std::mutex> lock(mu_);
        order_.push_back(identity + "/" + std::to_string(stream));
      });
    }
  }
  std::vector<std::string> Run(size_t expected) {
    gate_.set_value();
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (order_.size() >= expected) return order_;
      }
      std::this_thread::yield();
    }
  }
  std::promise<void> gate_;
  std::mutex mu_;
  std::vector<std::string> order_;
  WorkerPool pool_{1};
};

TEST_F(FairnessTest, StreamsTakeTurnsWhateverTheyQueue) {
  Block();
  Queue("", 1, 6);  // a stream with a deep queue
  Queue("", 2, 2);
  Queue("", 3, 2);
  EXPECT_THAT(Run(10), ::testing::ElementsAre("/1", "/2", "/3", "/1", "/2", "/3", "/1", "/1", "/1", "/1"));
}

TEST_F(FairnessTest, AnIdentityWithManyStreamsGetsOneTurnOfTwo) {
  Block();
  for (uint64_t s = 1; s <= 5; ++s) Queue("flood", s, 2);
  Queue("alice", 100, 4);
  std::vector<std::string> order = Run(14);
  // alice's four tasks run within the first eight, every other turn.
  int alice = 0;
  for (size_t i = 0; i < 8; ++i) alice += order[i].rfind("alice", 0) == 0;
  EXPECT_EQ(alice, 4);
  // flood's streams take turns among themselves.
  std::vector<std::string> flood;
  for (const auto& x : order) {
    if (x.rfind("flood", 0) == 0) flood.push_back(x);
  }
  EXPECT_THAT(std::vector<std::string>(flood.begin(), flood.begin() + 5),
              ::testing::ElementsAre("flood/1", "flood/2", "flood/3", "flood/4", "flood/5"));
}

// Property: whatever is queued, every task runs exactly once and, within a
// key, in the order it was queued.
TEST(WorkerPoolTest, EveryTaskRunsOnceInOrderPerKeyProperty) {
  std::mt19937 rng(3);
  for (int round = 0; round < 20; ++round) {
    std::mutex mu;
    std::map<std::pair<int, int>, std::vector<int>> ran;
    int total = 0;
    {
      WorkerPool pool(1 + round % 3);
      for (int i = 0; i < 300; ++i) {
        const int who = static_cast<int>(rng() % 3), stream = static_cast<int>(rng() % 4);
        const int seq = total++;
        pool.Submit({std::to_string(who), static_cast<uint64_t>(stream)}, [&, who, stream, seq] {
          std::lock_guard<std::mutex> lock(mu);
          ran[{who, stream}].push_back(seq);
        });
      }
    }  // the destructor runs what is queued
    int seen = 0;
    for (const auto& [key, seqs] : ran) {
      seen += static_cast<int>(seqs.size());
      if (round % 3 == 0) EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));  // one worker: FIFO per key
    }
    EXPECT_EQ(seen, total);
  }
}

TEST(WorkerPoolTest, OneOffKeysAreDistinct) {
  WorkerPool pool(1);
  FairKey a = pool.OneOffKey("x"), b = pool.OneOffKey("x");
  EXPECT_NE(a.stream, b.stream);
  EXPECT_EQ(a.identity, "x");
}

}  // namespace
}  // namespace m3serve::server
