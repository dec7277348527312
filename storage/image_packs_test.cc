#include "storage/image_packs.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <set>
#include <random>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace m3serve::storage {
namespace {

namespace fs = std::filesystem;
using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

class ImagePacksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("m3serve_packs_test_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<ImagePacks> Open(uint64_t file_bytes, bool read_only = false) {
    auto p = ImagePacks::Open(dir_.string(), read_only, file_bytes);
    EXPECT_THAT(p, IsOk());
    return p.ok() ? std::move(*p) : nullptr;
  }
  size_t PackFiles() const {
    size_t n = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_ / "packs", ec)) n += e.path().extension() == ".pack";
    return n;
  }

  fs::path dir_;
};

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

struct Written {
  std::string bytes;
  PackLocation where;
};

TEST_F(ImagePacksTest, AFreshStoreHasNoPackFiles) {
  auto packs = Open(1 << 20);
  EXPECT_THAT(packs->CheckFiles(), IsOk());
  EXPECT_FALSE(fs::exists(dir_ / "packs"));
  EXPECT_THAT(packs->RemoveUnused({}), IsOk());
}

// Property: whatever the image sizes, file size limit and interleaving of
// writers, every image reads back as written from wherever its location says,
// files are never reused, and RemoveUnused deletes exactly the files that
// hold no live image and that no writer is writing.
TEST_F(ImagePacksTest, RandomWritesReadBackAndRemoveUnusedKeepsLiveFiles) {
  for (int round = 0; round < 20; ++round) {
    fs::remove_all(dir_ / "packs");
    std::mt19937_64 rng(1000 + round);
    const uint64_t file_bytes = 64 + rng() % 20000;
    auto packs = Open(file_bytes);
    // Writeback and syncs on the background threads, often, while files
    // rotate and writers close under it.
    packs->SetSyncIntervals(1 + rng() % 40000, 1 + rng() % 80000);
    std::map<Hash128, Written> all;
    std::set<uint64_t> numbers_seen;
    {
      std::vector<std::unique_ptr<PackWriter>> writers;
      for (int w = 0; w < 1 + static_cast<int>(rng() % 3); ++w) writers.push_back(*packs->NewWriter());
      const int n = 5 + static_cast<int>(rng() % 60);
      for (int i = 0; i < n; ++i) {
        std::string bytes = RandomBytes(rng, rng() % 3 == 0 ? rng() % 30000 : rng() % 500);
        const Hash128 h = ContentHash(bytes + std::to_string(i));  // unique even for equal bytes
        auto where = writers[rng() % writers.size()]->Append(h, bytes);
        ASSERT_THAT(where, IsOk());
        EXPECT_GE(where->offset, ImagePacks::kFileHeaderBytes);
        all[h] = {bytes, *where};
        numbers_seen.insert(where->pack);
      }
    }  // writers closed
    // Hashes were made unique with a suffix: check the record, not the content.
    for (const auto& [h, w] : all) {
      std::string out;
      ASSERT_THAT(packs->Read(w.where, w.bytes.size(), h, &out, /*check_content=*/false), IsOk());
      EXPECT_EQ(out, w.bytes);
    }
    EXPECT_EQ(PackFiles(), numbers_seen.size());
    // A new writer after reopening never appends to an old file.
    auto reopened = Open(file_bytes);
    auto late = *reopened->NewWriter();
    std::string extra = "late image";
    auto late_where = late->Append(ContentHash(extra), extra);
    ASSERT_THAT(late_where, IsOk());
    EXPECT_GT(late_where->pack, *numbers_seen.rbegin());
    // Keep a random subset live; the late writer's file is being written.
    absl::flat_hash_set<uint64_t> live;
    for (uint64_t number : numbers_seen) {
      if (rng() % 2) live.insert(number);
    }
    auto removed = reopened->RemoveUnused(live);
    ASSERT_THAT(removed, IsOk());
    EXPECT_EQ(*removed, numbers_seen.size() - live.size());
    for (const auto& [h, w] : all) {
      std::string out;
      absl::Status s = reopened->Read(w.where, w.bytes.size(), h, &out, false);
      if (live.contains(w.where.pack)) {
        EXPECT_THAT(s, IsOk());
        EXPECT_EQ(out, w.bytes);
      } else {
        EXPECT_THAT(s, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("is missing")));
      }
    }
    std::string out;
    EXPECT_THAT(reopened->Read(*late_where, extra.size(), ContentHash(extra), &out), IsOk());
    EXPECT_EQ(out, extra);
  }
}

size_t OpenDescriptors() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// Property: however often writers ask for writeback and syncs, no more than
// kMaxBackground requests (each holding a descriptor) wait for the background
// threads, SyncWriters returns only when all of them are done, and every image
// reads back.
TEST_F(ImagePacksTest, BackgroundSyncsStayBoundedAndSyncWritersWaitsForThem) {
  for (int round = 0; round < 6; ++round) {
    fs::remove_all(dir_ / "packs");
    std::mt19937_64 rng(2000 + round);
    auto packs = Open(1 + rng() % 200000);
    packs->SetSyncIntervals(1 + rng() % 64, 1 + rng() % 256);  // nearly every append asks
    const size_t base = OpenDescriptors();
    std::map<Hash128, Written> all;
    std::mutex mu;
    size_t most_pending = 0, most_fds = 0;
    std::vector<std::thread> threads;
    const int nwriters = 1 + static_cast<int>(rng() % 3);
    for (int t = 0; t < nwriters; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 r(rng() + t);
        auto w = *packs->NewWriter();
        for (int i = 0; i < 150; ++i) {
          std::string bytes = RandomBytes(r, 1 + r() % 3000);
          const Hash128 h = ContentHash(bytes + std::to_string(t) + "/" + std::to_string(i));
          auto where = w->Append(h, bytes);
          std::lock_guard<std::mutex> lock(mu);
          ASSERT_THAT(where, IsOk());
          all[h] = {bytes, *where};
          most_pending = std::max(most_pending, packs->BackgroundPending());
          most_fds = std::max(most_fds, OpenDescriptors());
        }
      });
    }
    for (auto& th : threads) th.join();
    // A request being worked on has left the queue: one more per background
    // thread than the queues hold. Descriptors: each writer's file, one per
    // request, the listing's own and the folder's while a file is being
    // created.
    EXPECT_LE(most_pending, ImagePacks::kMaxBackground + ImagePacks::kLanes);
    EXPECT_LE(most_fds, base + nwriters + ImagePacks::kMaxBackground + ImagePacks::kLanes + 2);
    EXPECT_GT(most_pending, 0u);
    ASSERT_THAT(packs->SyncWriters(), IsOk());
    EXPECT_EQ(packs->BackgroundPending(), 0u);
    for (const auto& [h, w] : all) {
      std::string out;
      ASSERT_THAT(packs->Read(w.where, w.bytes.size(), h, &out, false), IsOk());
      EXPECT_EQ(out, w.bytes);
    }
  }
}

int FailingSync(int) {
  errno = EIO;
  return -1;
}

// A sync that fails on the sync thread is not lost: the writers' next
// Append fails with it, and so does SyncWriters (the ingest's closing flush:
// exit 1), naming the file.
TEST_F(ImagePacksTest, AFailedBackgroundSyncFailsTheNextAppendAndSyncWriters) {
  auto packs = Open(1 << 20);
  packs->SetSyncIntervals(1 << 20, 1);  // every append asks for a sync
  packs->SetBackgroundSyncForTesting(&FailingSync);
  auto w = *packs->NewWriter();
  auto other = *packs->NewWriter();
  std::string bytes(1000, 'x');
  ASSERT_THAT(w->Append(ContentHash("a"), bytes), IsOk());  // its sync fails later, in the background
  EXPECT_THAT(packs->SyncWriters(),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::AllOf(HasSubstr("sync"), HasSubstr(".pack"),
                                                                        HasSubstr("Input/output error"))));
  EXPECT_THAT(w->Append(ContentHash("b"), bytes), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("sync")));
  EXPECT_THAT(other->Append(ContentHash("c"), bytes), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("sync")));
}

TEST_F(ImagePacksTest, DamageIsDataLossNamingTheFile) {
  auto packs = Open(1 << 20);
  std::string a(5000, 'a'), b(7000, 'b');
  PackLocation wa, wb;
  {
    auto w = *packs->NewWriter();
    wa = *w->Append(ContentHash(a), a);
    wb = *w->Append(ContentHash(b), b);
  }
  const std::string path = packs->FilePath(wa.pack);
  std::string out;
  ASSERT_THAT(packs->Read(wa, a.size(), ContentHash(a), &out), IsOk());
  // Asked for with another hash or size: not this record.
  EXPECT_THAT(packs->Read(wa, a.size(), ContentHash(b), &out),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path)));
  EXPECT_THAT(packs->Read(wa, a.size() - 1, ContentHash(a), &out), StatusIs(absl::StatusCode::kDataLoss));
  {  // a byte of a's bytes flipped
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(wa.offset + ImagePacks::kRecordHeaderBytes + 100));
    f.put('X');
  }
  EXPECT_THAT(packs->Read(wa, a.size(), ContentHash(a), &out),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("do not hash")));
  // Without the content check the bytes are handed over, as they are on disk.
  ASSERT_THAT(packs->Read(wa, a.size(), ContentHash(a), &out, /*check_content=*/false), IsOk());
  EXPECT_EQ(out[100], 'X');
  // A size no record can have (a corrupt metadata record): refused before any
  // buffer of that size is made.
  EXPECT_THAT(packs->Read(wb, uint64_t{1} << 62, ContentHash(b), &out),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("ends before")));
  EXPECT_THAT(packs->Read({wb.pack, uint64_t{1} << 62}, b.size(), ContentHash(b), &out),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("ends before")));
  // Cut short: b ends past the end of the file.
  fs::resize_file(path, wb.offset + 100);
  EXPECT_THAT(packs->Read(wb, b.size(), ContentHash(b), &out),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("ends before")));
}

TEST_F(ImagePacksTest, CheckFilesNoticesAFileGoneOrCutButNotOneThatGrew) {
  {
    auto packs = Open(100);  // every image its own file
    auto w = *packs->NewWriter();
    for (int i = 0; i < 3; ++i) ASSERT_THAT(w->Append(ContentHash(std::to_string(i)), std::string(200, 'x')), IsOk());
  }
  auto packs = Open(100, /*read_only=*/true);
  EXPECT_THAT(packs->NewWriter(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(packs->CheckFiles(), IsOk());
  {
    std::ofstream grow(packs->FilePath(1), std::ios::app);
    grow << "more";
  }
  EXPECT_THAT(packs->CheckFiles(), IsOk());
  fs::resize_file(packs->FilePath(2), 10);
  EXPECT_THAT(packs->CheckFiles(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(packs->FilePath(2))));
  fs::remove(packs->FilePath(2));
  EXPECT_THAT(packs->CheckFiles(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("is gone")));
}

TEST_F(ImagePacksTest, LinkToMakesACopyThatReadsAlone) {
  auto packs = Open(1 << 20);
  std::string a = "some image bytes";
  PackLocation wa;
  {
    auto w = *packs->NewWriter();
    wa = *w->Append(ContentHash(a), a);
  }
  const fs::path copy = dir_ / "copy";
  ASSERT_THAT(packs->LinkTo(copy.string()), IsOk());
  packs.reset();
  fs::remove_all(dir_ / "packs");
  auto linked = ImagePacks::Open(copy.string(), true, 1 << 20);
  ASSERT_THAT(linked, IsOk());
  std::string out;
  ASSERT_THAT((*linked)->Read(wa, a.size(), ContentHash(a), &out), IsOk());
  EXPECT_EQ(out, a);
}

TEST_F(ImagePacksTest, FilesThatAreNotPacksAreLeftAlone) {
  fs::create_directories(dir_ / "packs");
  std::ofstream(dir_ / "packs" / "notes.txt") << "keep me";
  std::ofstream(dir_ / "packs" / "00000001.pack~") << "keep me too";
  auto packs = Open(1 << 20);
  ASSERT_THAT(packs->RemoveUnused({}), IsOk());
  EXPECT_TRUE(fs::exists(dir_ / "packs" / "notes.txt"));
  EXPECT_TRUE(fs::exists(dir_ / "packs" / "00000001.pack~"));
}

}  // namespace
}  // namespace m3serve::storage
