// Scale-out: three m3serve-server replicas over one store (opened read-only),
// clients given all three addresses, one replica killed mid-stream.
#include <signal.h>

#include <filesystem>
#include <set>

#include "client/dataset_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/process.h"
#include "tests/server_process.h"

namespace m3serve::tests {
namespace {

namespace v1 = ::m3serve::v1;

class ReplicaTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScopedTempDir("replicas");
    ASSERT_EQ(RunCommand({Bin("m3serve-admin"), "sample", "--out", *dir_ / "sample", "--scale", "4"}).exit_code, 0);
    CommandResult ing = RunCommand({Bin("m3serve-admin"), "ingest", "--db", *dir_ / "store", "--progress",
                                    "none", *dir_ / "sample/M3IT", *dir_ / "sample/M3IT-80"});
    ASSERT_EQ(ing.exit_code, 0) << ing.out << ing.err;
  }
  static void TearDownTestSuite() { delete dir_; }

  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      replicas_.push_back(std::make_unique<ServerProcess>(*dir_ / "store", *dir_ / ("r" + std::to_string(i))));
      std::string err;
      ASSERT_TRUE(replicas_.back()->Start(&err)) << err;
    }
  }

  std::vector<std::string> Targets() const {
    std::vector<std::string> t;
    for (const auto& r : replicas_) t.push_back(r->target());
    return t;
  }

  static v1::StreamRequest Request(uint32_t shard, uint32_t count) {
    v1::StreamRequest r;
    r.mutable_sharding()->set_index(shard);
    r.mutable_sharding()->set_count(count);
    r.set_order(v1::ORDER_SHUFFLED);
    r.set_seed(42);
    r.set_epoch(3);
    r.set_batch_size(4);
    r.mutable_images()->set_mode(v1::IMAGE_MODE_ENCODED);
    return r;
  }

  static std::vector<std::string> Ids(client::DatasetClient& c, const v1::StreamRequest& req) {
    std::vector<std::string> ids;
    auto s = c.Stream(req);
    v1::InstanceBatch b;
    while (true) {
      auto more = s->Next(&b);
      EXPECT_TRUE(more.ok()) << more.status();
      if (!more.ok() || !*more) break;
      for (const auto& x : b.instances()) ids.push_back(x.id());
    }
    return ids;
  }

  static std::unique_ptr<client::DatasetClient> Client(std::vector<std::string> targets) {
    client::ClientOptions o;
    o.targets = std::move(targets);
    o.initial_backoff = absl::Milliseconds(50);
    o.max_backoff = absl::Milliseconds(500);
    return std::move(*client::DatasetClient::Create(o));
  }

  static ScopedTempDir* dir_;
  std::vector<std::unique_ptr<ServerProcess>> replicas_;
};
ScopedTempDir* ReplicaTest::dir_ = nullptr;

TEST_F(ReplicaTest, EveryReplicaReturnsTheSameOrder) {
  std::vector<std::vector<std::string>> orders;
  for (const auto& r : replicas_) orders.push_back(Ids(*Client({r->target()}), Request(1, 3)));
  ASSERT_FALSE(orders[0].empty());
  EXPECT_EQ(orders[0], orders[1]);
  EXPECT_EQ(orders[0], orders[2]);
}

TEST_F(ReplicaTest, ShardsCompleteWhenAReplicaDiesMidStream) {
  constexpr uint32_t kShards = 4;
  std::vector<std::vector<std::string>> want;
  auto reference = Client({replicas_[2]->target()});
  for (uint32_t i = 0; i < kShards; ++i) want.push_back(Ids(*reference, Request(i, kShards)));

  // One client over all three replicas: its streams start on replicas 0, 1, 2, 0.
  // Decoded 256x256 images make each shard far larger than what transport
  // buffers hold, so the streams on replica 0 are really cut off by the kill.
  auto c = Client(Targets());
  std::vector<std::unique_ptr<client::InstanceStream>> streams;
  std::vector<std::vector<std::string>> got(kShards);
  v1::InstanceBatch b;
  for (uint32_t i = 0; i < kShards; ++i) {
    v1::StreamRequest big = Request(i, kShards);
    big.mutable_images()->set_mode(v1::IMAGE_MODE_DECODED);
    big.mutable_images()->set_width(256);
    big.mutable_images()->set_height(256);
    streams.push_back(c->Stream(big));
    for (int k = 0; k < 2; ++k) {
      ASSERT_TRUE(*streams[i]->Next(&b));
      for (const auto& x : b.instances()) got[i].push_back(x.id());
    }
  }
  replicas_[0]->Stop(SIGKILL);  // two of the four streams lose their server
  int reconnects = 0;
  for (uint32_t i = 0; i < kShards; ++i) {
    while (true) {
      auto more = streams[i]->Next(&b);
      ASSERT_TRUE(more.ok()) << "shard " << i << ": " << more.status();
      if (!*more) break;
      for (const auto& x : b.instances()) got[i].push_back(x.id());
    }
    reconnects += streams[i]->reconnects();
  }
  std::set<std::string> all;
  size_t total = 0;
  for (uint32_t i = 0; i < kShards; ++i) {
    EXPECT_EQ(got[i], want[i]) << "shard " << i;  // 0 duplicates, 0 gaps, same order
    all.insert(got[i].begin(), got[i].end());
    total += got[i].size();
  }
  EXPECT_EQ(all.size(), total);
  EXPECT_GE(reconnects, 1);
}

TEST_F(ReplicaTest, ServesFromAReadOnlyMount) {
  // The Kubernetes manifests mount the store read-only; prove the server needs
  // no write access, on a real read-only bind mount in a private mount namespace.
  const std::string mnt = *dir_ / "ro";
  std::filesystem::create_directories(mnt);
  CommandResult probe = RunCommand({"/usr/bin/unshare", "-m", "/bin/true"});
  if (probe.exit_code != 0) GTEST_SKIP() << "SKIPPED: cannot create a mount namespace here: " << probe.err;
  const std::string script =
      "mount --bind \"$0\" \"$1\" && mount -o remount,ro,bind \"$1\" && shift && exec \"$@\"";
  ServerProcess ro(mnt, *dir_ / "ro_server", {},
                   {"/usr/bin/unshare", "-m", "/bin/sh", "-c", script, *dir_ / "store", mnt});
  std::string err;
  ASSERT_TRUE(ro.Start(&err)) << err;
  auto ids = Ids(*Client({ro.target()}), Request(0, 1));
  EXPECT_EQ(ids, Ids(*Client({replicas_[1]->target()}), Request(0, 1)));
  EXPECT_FALSE(ids.empty());
}

}  // namespace
}  // namespace m3serve::tests
