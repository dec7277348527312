// Load: 64 concurrent streams on loopback for a bounded time (about half a
// minute), a third of them slow readers. No errors, every stream complete,
// server memory bounded, fast streams not held back by slow ones, and beyond
// the stream limit new streams get RESOURCE_EXHAUSTED while the others go on.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "client/dataset_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/process.h"
#include "tests/server_process.h"

namespace m3serve::tests {
namespace {

namespace v1 = ::m3serve::v1;
using Clock = std::chrono::steady_clock;

uint64_t PeakRssBytes(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

TEST(LoadTest, SixtyFourStreamsWithSlowReaders) {
  ScopedTempDir dir("load");
  ASSERT_EQ(RunCommand({Bin("m3serve-admin"), "sample", "--out", dir / "sample", "--scale", "12"}).exit_code, 0);
  ASSERT_EQ(RunCommand({Bin("m3serve-admin"), "ingest", "--db", dir / "store", "--progress", "none",
                        dir / "sample/M3IT", dir / "sample/M3IT-80"}).exit_code, 0);
  constexpr int kStreams = 64;
  ServerProcess server(dir / "store", dir / "server", {"--max-streams", std::to_string(kStreams)});
  std::string err;
  ASSERT_TRUE(server.Start(&err)) << err;
  const std::string pid_text = ReadFile(dir / "server/ready.json");
  const int pid = std::stoi(pid_text.substr(pid_text.find("\"pid\": ") + 7));

  client::ClientOptions o;
  o.targets = {server.target()};
  auto c = *client::DatasetClient::Create(o);
  const uint64_t total = c->GetCatalog()->total_instances();

  std::mutex mu;
  std::set<std::string> seen;
  uint64_t delivered = 0;
  std::vector<double> fast_done, slow_done;
  std::atomic<int> errors{0}, open_streams{0};
  std::atomic<bool> extra_tried{false};
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      const bool slow = i % 3 == 0;
      v1::StreamRequest req;
      req.mutable_sharding()->set_index(i);
      req.mutable_sharding()->set_count(kStreams);
      req.set_order(v1::ORDER_SHUFFLED);
      req.set_seed(5);
      req.set_batch_size(1);
      req.mutable_images()->set_mode(v1::IMAGE_MODE_DECODED);
      // 256 x 256 (197 KB per instance, about 5 MB per stream): far more than
      // a stream's transport window, even grown by BDP probing under load, so
      // a stream whose client waits stays open on the server.
      req.mutable_images()->set_width(256);
      req.mutable_images()->set_height(256);
      auto stream = c->Stream(req);
      v1::InstanceBatch b;
      std::vector<std::string> ids;
      // Open: the first batch is here. Every stream waits until the 65th has
      // been tried, so all 64 are active then, however fast they would finish.
      auto first = stream->Next(&b);
      if (!first.ok()) {
        ADD_FAILURE() << "stream " << i << ": " << first.status();
        errors++;
      } else if (*first) {
        for (const auto& x : b.instances()) ids.push_back(x.id());
      }
      open_streams++;
      while (!extra_tried.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      while (first.ok() && *first) {
        auto more = stream->Next(&b);
        if (!more.ok()) {
          ADD_FAILURE() << "stream " << i << ": " << more.status();
          errors++;
          break;
        }
        if (!*more) break;
        for (const auto& x : b.instances()) ids.push_back(x.id());
        if (slow) std::this_thread::sleep_for(std::chrono::milliseconds(900));
      }
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      std::lock_guard<std::mutex> lock(mu);
      (slow ? slow_done : fast_done).push_back(secs);
      delivered += ids.size();
      seen.insert(ids.begin(), ids.end());
    });
  }
  // While all 64 are open, one more is refused and the others are unaffected.
  while (open_streams.load() < kStreams) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  {
    auto stub = v1::DatasetService::NewStub(grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::StreamRequest req;
    auto extra = stub->StreamInstances(&ctx, req);
    v1::InstanceBatch b;
    while (extra->Read(&b)) {
    }
    EXPECT_EQ(extra->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  extra_tried = true;
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();

  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(delivered, total);      // every stream complete
  EXPECT_EQ(seen.size(), total);    // and no instance twice
  std::sort(fast_done.begin(), fast_done.end());
  std::sort(slow_done.begin(), slow_done.end());
  // Fast streams finish long before the slow ones: not starved.
  EXPECT_LT(fast_done[fast_done.size() / 2], slow_done[slow_done.size() / 2] / 2)
      << "fast median " << fast_done[fast_done.size() / 2] << " s, slow median " << slow_done[slow_done.size() / 2] << " s";
  const uint64_t rss = PeakRssBytes(pid);
  EXPECT_GT(rss, 0u);
#ifndef M3SERVE_SANITIZED  // ASan's shadow memory and quarantine inflate RSS several times
  EXPECT_LE(rss, 300ull << 20) << "server peak RSS " << rss / 1e6 << " MB";
#endif
  EXPECT_LT(elapsed, 120.0);
  RecordProperty("server_peak_rss_mb", static_cast<int>(rss >> 20));
  RecordProperty("seconds", static_cast<int>(elapsed));
}

}  // namespace
}  // namespace m3serve::tests
