// Faults: a corrupted store copy (never a crash, never wrong bytes served as
// good), and a disk that fills up during ingest (clear error, the store still
// opens and verifies, a later ingest completes to the same content).
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "client/dataset_client.h"
#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/process.h"
#include "tests/server_process.h"

namespace m3serve::tests {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::m3serve::v1;
using ::testing::HasSubstr;

class FaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScopedTempDir("faults");
    ASSERT_EQ(RunCommand({Bin("m3serve-admin"), "sample", "--out", *dir_ / "sample", "--scale", "2"}).exit_code, 0);
    ASSERT_EQ(RunCommand({Bin("m3serve-admin"), "ingest", "--db", *dir_ / "store", "--progress", "none",
                          *dir_ / "sample/M3IT", *dir_ / "sample/M3IT-80"}).exit_code, 0);
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string Digest(const std::string& db) {
    CommandResult r = RunCommand({Bin("m3serve-admin"), "verify", "--db", db});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    auto pos = r.out.find("digest ");
    return pos == std::string::npos ? "" : r.out.substr(pos + 7, 32);
  }

  static ScopedTempDir* dir_;
};
ScopedTempDir* FaultTest::dir_ = nullptr;

// Overwrite `n` bytes in the middle of `path`.
void Damage(const fs::path& path, size_t n) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(fs::file_size(path) / 2));
  std::string junk(n, '\xA5');
  f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
}

TEST_F(FaultTest, CorruptImagePackIsDataLossNeverWrongBytes) {
  const fs::path copy = *dir_ / "corrupt";
  fs::copy(*dir_ / "store", copy, fs::copy_options::recursive);
  std::vector<fs::path> packs;
  for (const auto& e : fs::directory_iterator(copy / "packs")) {
    if (e.path().extension() == ".pack") packs.push_back(e.path());
  }
  ASSERT_FALSE(packs.empty());
  for (const auto& p : packs) Damage(p, 4096);

  ServerProcess s(copy.string(), *dir_ / "corrupt_server");
  std::string err;
  ASSERT_TRUE(s.Start(&err)) << err;  // opening does not read image bytes
  client::ClientOptions o;
  o.targets = {s.target()};
  auto c = *client::DatasetClient::Create(o);
  v1::StreamRequest req;
  req.set_batch_size(1);
  req.mutable_images()->set_mode(v1::IMAGE_MODE_ENCODED);
  auto stream = c->Stream(req);
  v1::InstanceBatch b;
  absl::Status end;
  uint64_t good = 0;
  while (true) {
    auto more = stream->Next(&b);
    if (!more.ok()) {
      end = more.status();
      break;
    }
    if (!*more) break;
    for (const auto& x : b.instances()) {
      for (const auto& img : x.images()) {
        ASSERT_EQ(ContentHash(img.data()).Hex(), img.content_hash()) << "wrong bytes served for " << x.id();
      }
      ++good;
    }
  }
  EXPECT_EQ(end.code(), absl::StatusCode::kDataLoss) << end;
  // The server is still up and serves what it can read.
  EXPECT_TRUE(c->GetCatalog().ok());
  v1::GetInstancesRequest none;
  none.add_ids("coco/train/en/0");
  none.mutable_images()->set_mode(v1::IMAGE_MODE_NONE);
  EXPECT_TRUE(c->GetInstances(none).ok());
  CommandResult stopped = s.Stop(SIGTERM);
  EXPECT_EQ(stopped.exit_code, 0) << stopped.out;  // never crashed
  // verify names the damage too.
  CommandResult v = RunCommand({Bin("m3serve-admin"), "verify", "--db", copy.string()});
  EXPECT_NE(v.exit_code, 0);
}

TEST_F(FaultTest, CorruptTableFileNeverCrashes) {
  const fs::path copy = *dir_ / "corrupt_sst";
  fs::copy(*dir_ / "store", copy, fs::copy_options::recursive);
  std::vector<fs::path> ssts;
  for (const auto& e : fs::directory_iterator(copy)) {
    if (e.path().extension() == ".sst") ssts.push_back(e.path());
  }
  ASSERT_FALSE(ssts.empty());
  for (const auto& p : ssts) Damage(p, 512);
  ServerProcess s(copy.string(), *dir_ / "corrupt_sst_server");
  std::string err;
  if (!s.Start(&err)) {
    // Refusing to start is fine when it says why.
    EXPECT_THAT(err, ::testing::AnyOf(HasSubstr("Corruption"), HasSubstr("corrupt"), HasSubstr("DATA_LOSS")))
        << err;
    return;
  }
  client::ClientOptions o;
  o.targets = {s.target()};
  auto c = *client::DatasetClient::Create(o);
  v1::StreamRequest req;
  req.mutable_images()->set_mode(v1::IMAGE_MODE_ENCODED);
  auto stream = c->Stream(req);
  v1::InstanceBatch b;
  while (true) {
    auto more = stream->Next(&b);
    if (!more.ok()) {
      EXPECT_EQ(more.status().code(), absl::StatusCode::kDataLoss) << more.status();
      break;
    }
    if (!*more) break;
    for (const auto& x : b.instances()) {
      for (const auto& img : x.images()) EXPECT_EQ(ContentHash(img.data()).Hex(), img.content_hash());
    }
  }
  CommandResult stopped = s.Stop(SIGTERM);
  EXPECT_EQ(stopped.signal, 0) << stopped.out;
}

TEST_F(FaultTest, DiskFullDuringIngest) {
  const std::string want = Digest(*dir_ / "store");
  const std::string db = *dir_ / "full";
  // A 100 KB file-size limit: the first image pack file cannot be written whole.
  CommandResult full = RunCommand({"/usr/bin/prlimit", "--fsize=100000", "--", Bin("m3serve-admin"), "ingest",
                                   "--db", db, "--progress", "none", *dir_ / "sample/M3IT", *dir_ / "sample/M3IT-80"});
  ASSERT_EQ(full.exit_code, 1) << full.out << full.err;
  EXPECT_THAT(full.err, ::testing::AnyOf(HasSubstr("File too large"), HasSubstr("No space"), HasSubstr("IO error")))
      << full.err;
  // The store still opens and verifies, and a later ingest completes it.
  CommandResult v = RunCommand({Bin("m3serve-admin"), "verify", "--db", db});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  CommandResult again = RunCommand({Bin("m3serve-admin"), "ingest", "--db", db, "--progress", "none",
                                    *dir_ / "sample/M3IT", *dir_ / "sample/M3IT-80"});
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_EQ(Digest(db), want);
}

}  // namespace
}  // namespace m3serve::tests
