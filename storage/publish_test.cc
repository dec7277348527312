#include "storage/publish.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace m3serve::storage {
namespace {

namespace fs = std::filesystem;
using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

class PublishTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("m3serve_publish_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    root_ = (dir_ / "published").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A work store whose content (and so version) is told apart by `n`.
  Store& Work(int n) {
    auto it = work_.find(n);
    if (it != work_.end()) return *it->second;
    auto s = Store::Open({.path = (dir_ / ("work" + std::to_string(n))).string()});
    EXPECT_THAT(s, IsOk());
    StoreWriteBatch b;
    b.PutTask({"coco", "captioning", "MS COCO", "CC-BY-4.0", CommercialUse::kYes, false, Modality::kImage, "en"});
    std::string img = "image-" + std::to_string(n);
    b.PutImage(ContentHash(img), {ImageFormat::kJpeg, 4, 3, img.size()}, img);
    for (int i = 0; i < n; ++i) {
      Instance x;
      x.group = {"coco", "train", "en"};
      x.ordinal = static_cast<uint64_t>(i);
      x.outputs = "caption " + std::to_string(i);
      x.images = {ContentHash(img)};
      b.PutInstance(x);
    }
    b.PutCount({"coco", "train", "en"}, static_cast<uint64_t>(n));
    EXPECT_THAT((*s)->Write(&b), IsOk());
    EXPECT_THAT((*s)->Flush(), IsOk());
    return *(work_[n] = std::move(*s));
  }
  std::string VersionOf(int n) { return *StoreVersion(Work(n)); }
  std::string Pointer() {
    std::ifstream f(fs::path(root_) / kPointerFile);
    std::string v;
    f >> v;
    return v;
  }
  std::set<std::string> Versions() {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fs::path(root_) / kVersionsDir, ec)) {
      out.insert(e.path().filename().string());
    }
    return out;
  }
  // The version `path` (a publish root or a store) opens as, checked against its pointer.
  absl::StatusOr<std::string> Opens(const std::string& path) {
    M3SERVE_ASSIGN_OR_RETURN(ResolvedStore r, ResolveStore(path));
    StoreOptions o;
    o.read_only = true;
    o.block_cache_bytes = 1 << 20;
    M3SERVE_ASSIGN_OR_RETURN(std::unique_ptr<Store> s, OpenResolved(r, o));
    return StoreVersion(*s);
  }
  static void Age(const std::string& path, absl::Duration by) {
    struct timespec t[2];
    t[0] = t[1] = absl::ToTimespec(absl::Now() - by);
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), t, 0), 0);
  }

  fs::path dir_;
  std::string root_;
  std::map<int, std::unique_ptr<Store>> work_;
};

TEST_F(PublishTest, NewVersionsBesideTheOldOnesThenThePointerSwitches) {
  auto r = Publish(Work(1), root_, {});
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->written);
  EXPECT_EQ(r->previous, "");
  EXPECT_EQ(Pointer(), VersionOf(1));
  EXPECT_EQ(Opens(root_).value_or("(error)"), VersionOf(1));
  // A server holds version 1 while version 2 is published.
  auto lease = Lease::Acquire(root_, "server-a", VersionOf(1));
  ASSERT_THAT(lease, IsOk());
  r = Publish(Work(2), root_, {.keep = 0});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->previous, VersionOf(1));
  EXPECT_EQ(Pointer(), VersionOf(2));
  EXPECT_THAT(r->kept, ::testing::ElementsAre(HasSubstr("in use by server-a")));
  EXPECT_EQ(Versions(), (std::set<std::string>{VersionOf(1), VersionOf(2)}));
  // The same version again: nothing written, the pointer stays.
  r = Publish(Work(2), root_, {.keep = 0});
  ASSERT_THAT(r, IsOk());
  EXPECT_FALSE(r->written);
  // The server stops: its version goes at the next clean-up.
  *lease = std::move(*Lease::Acquire(root_, "server-b", VersionOf(2)));
  r = CleanUp(root_, {.keep = 0});
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->removed, ::testing::ElementsAre(VersionOf(1)));
  EXPECT_EQ(Versions(), (std::set<std::string>{VersionOf(2)}));
  // A plain store resolves to itself.
  EXPECT_EQ(Opens((dir_ / "work1").string()).value_or("(error)"), VersionOf(1));
  EXPECT_FALSE(IsPublishRoot((dir_ / "work1").string()));
}

TEST_F(PublishTest, DeadLeasesDoNotKeepVersions) {
  ASSERT_THAT(Publish(Work(1), root_, {}), IsOk());
  auto lease = Lease::Acquire(root_, "crashed", VersionOf(1));
  ASSERT_THAT(lease, IsOk());
  Age(lease->path(), absl::Minutes(5));
  auto r = Publish(Work(2), root_, {.keep = 0, .lease_ttl = absl::Seconds(60)});
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->removed, ::testing::ElementsAre(VersionOf(1)));
  EXPECT_FALSE(fs::exists(lease->path()));
  // A refresh after that writes the lease again.
  ASSERT_THAT(lease->Refresh(), IsOk());
  EXPECT_TRUE(fs::exists(lease->path()));
}

// Property: over random publishes, leases taken at the pointer's version (as
// a starting server does), leases released or left to die, and clean-ups
// with random `keep`, the pointer's version and every version a live lease
// holds are always there and open as that version, and after a clean-up no
// more than `keep` other versions remain.
TEST_F(PublishTest, NeverRemovesWhatIsCurrentOrInUse) {
  std::mt19937_64 rng(5);
  for (int n = 1; n <= 5; ++n) Work(n);
  std::vector<std::optional<Lease>> leases(6);
  std::vector<std::string> leased_version(6);
  for (int step = 0; step < 120; ++step) {
    const int op = static_cast<int>(rng() % 4);
    const int keep = static_cast<int>(rng() % 3);
    if (op == 0 || Pointer().empty()) {
      ASSERT_THAT(Publish(Work(1 + static_cast<int>(rng() % 5)), root_, {.keep = keep}), IsOk());
    } else if (op == 1) {
      const size_t k = rng() % leases.size();
      auto l = Lease::Acquire(root_, "server-" + std::to_string(k), Pointer());
      ASSERT_THAT(l, IsOk());
      leases[k] = std::move(*l);
      leased_version[k] = Pointer();
    } else if (op == 2) {
      const size_t k = rng() % leases.size();
      if (rng() % 2) {
        leases[k].reset();
      } else if (leases[k]) {
        // Its server was killed: the file stays behind, no longer refreshed.
        const std::string path = leases[k]->path();
        leases[k].reset();
        std::ofstream(path) << leased_version[k] << "\n";
        Age(path, absl::Minutes(10));
      }
    } else {
      auto r = CleanUp(root_, {.keep = keep});
      ASSERT_THAT(r, IsOk());
      std::set<std::string> live;
      for (size_t k = 0; k < leases.size(); ++k) {
        if (leases[k]) live.insert(leased_version[k]);
      }
      int others = 0;
      for (const auto& v : Versions()) others += v != Pointer() && !live.count(v);
      EXPECT_LE(others, keep);
    }
    EXPECT_EQ(Opens(root_).value_or("(error)"), Pointer()) << "step " << step;
    for (size_t k = 0; k < leases.size(); ++k) {
      if (!leases[k]) continue;
      ResolvedStore r{(fs::path(root_) / kVersionsDir / leased_version[k]).string(), leased_version[k], root_};
      StoreOptions o;
      o.read_only = true;
      o.block_cache_bytes = 1 << 20;
      EXPECT_THAT(OpenResolved(r, o), IsOk()) << "step " << step << ": a leased version is gone";
    }
  }
}

TEST_F(PublishTest, BadInputIsRefusedAndNothingIsDeleted) {
  // A root that is a store itself.
  const std::string store_dir = (dir_ / "work1").string();
  Work(1);
  EXPECT_THAT(Publish(Work(2), store_dir, {}), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("holds a store")));
  EXPECT_FALSE(fs::exists(fs::path(store_dir) / kVersionsDir));
  // A root with other files.
  fs::create_directories(dir_ / "other");
  std::ofstream(dir_ / "other" / "notes.txt") << "mine";
  EXPECT_THAT(Publish(Work(1), (dir_ / "other").string(), {}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("notes.txt")));
  EXPECT_TRUE(fs::exists(dir_ / "other" / "notes.txt"));
  EXPECT_FALSE(fs::exists(dir_ / "other" / kVersionsDir));
  // Nothing published yet.
  fs::create_directories(fs::path(root_) / kVersionsDir);
  EXPECT_THAT(ResolveStore(root_), StatusIs(absl::StatusCode::kNotFound, HasSubstr("no published version")));
  EXPECT_THAT(CleanUp(root_, {}), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("has no CURRENT_VERSION")));
  // A pointer to a missing version.
  ASSERT_THAT(Publish(Work(1), root_, {}), IsOk());
  const fs::path v1 = fs::path(root_) / kVersionsDir / VersionOf(1);
  const fs::path v2 = fs::path(root_) / kVersionsDir / VersionOf(2);
  fs::rename(v1, dir_ / "moved-away");
  EXPECT_THAT(ResolveStore(root_), StatusIs(absl::StatusCode::kNotFound, HasSubstr("is missing")));
  // ... and a clean-up then removes nothing, not even an unused other version.
  fs::create_directories(fs::path(root_) / kVersionsDir / "0123456789abcdef0123456789abcdef");
  EXPECT_THAT(CleanUp(root_, {.keep = 0}), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("nothing was removed")));
  EXPECT_TRUE(fs::exists(fs::path(root_) / kVersionsDir / "0123456789abcdef0123456789abcdef"));
  fs::remove(fs::path(root_) / kVersionsDir / "0123456789abcdef0123456789abcdef");
  // A store whose version differs from the pointer.
  fs::rename(dir_ / "moved-away", v2);
  std::ofstream(fs::path(root_) / kPointerFile) << VersionOf(2) << "\n";
  EXPECT_THAT(Opens(root_), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not the " + VersionOf(2))));
  // Publishing version 2 where that folder holds version 1: refused, kept.
  EXPECT_THAT(Publish(Work(2), root_, {.keep = 0}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("holds a store of version " + VersionOf(1))));
  EXPECT_TRUE(fs::exists(v2));
  // A malformed pointer.
  std::ofstream(fs::path(root_) / kPointerFile) << "../../etc\n";
  EXPECT_THAT(ResolveStore(root_), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a dataset version")));
  EXPECT_THAT(Lease::Acquire(root_, "../evil", VersionOf(1)), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(PublishTest, LeftoversOfAKilledPublishAreReplaced) {
  const fs::path tmp = fs::path(root_) / kVersionsDir / (".tmp-" + VersionOf(3));
  fs::create_directories(tmp);
  std::ofstream(tmp / "000001.sst") << "half a file";
  auto r = Publish(Work(3), root_, {});
  ASSERT_THAT(r, IsOk());
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_EQ(Opens(root_).value_or("(error)"), VersionOf(3));
}

TEST_F(PublishTest, CheckFilesNoticesAStoreDeletedUnderIt) {
  ASSERT_THAT(Publish(Work(4), root_, {}), IsOk());
  auto resolved = ResolveStore(root_);
  ASSERT_THAT(resolved, IsOk());
  StoreOptions o;
  o.read_only = true;
  auto store = OpenResolved(*resolved, o);
  ASSERT_THAT(store, IsOk());
  EXPECT_THAT((*store)->CheckFiles(), IsOk());
  int removed = 0;
  for (const auto& e : fs::directory_iterator(resolved->store)) {
    const std::string ext = e.path().extension().string();
    if (ext == ".sst" || ext == ".blob") removed += fs::remove(e.path());
  }
  ASSERT_GT(removed, 0);
  EXPECT_THAT((*store)->CheckFiles(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("is gone")));
}

}  // namespace
}  // namespace m3serve::storage
