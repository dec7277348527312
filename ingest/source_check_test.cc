#include "ingest/source_check.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/test_util.h"

namespace m3serve::ingest {
namespace {

using ::m3serve::ingest::testing::SetMtimeSecondsAgo;
using ::m3serve::ingest::testing::TempDir;
using ::m3serve::ingest::testing::WriteFile;
using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

// The progress a run records after consuming `offset` bytes of `content`.
storage::FileProgress PartialProgress(const std::string& content, uint64_t offset,
                                      const SourceStat& stat, int64_t checked_ns) {
  ChainedContentHash h;
  h.Update(absl::string_view(content).substr(0, offset));
  storage::FileProgress p;
  p.offset = offset;
  p.prefix_hash = h.Digest();
  p.hash_chain = h.chain();
  p.hash_offset = h.chain_offset();
  RecordStat(stat, checked_ns, &p);
  return p;
}

// An interrupted file resumes when what was ingested is unchanged, and its
// group restarts when any byte before the resume point changed (random
// resume points and changed bytes, found even when the stat looks the same
// apart from the time).
TEST(SourceCheckTest, ResumeOnlyOverAnUnchangedPrefix) {
  TempDir dir;
  const std::string path = (dir.path() / "f.jsonl").string();
  std::mt19937_64 rng(3);
  for (int round = 0; round < 20; ++round) {
    std::string content(std::uniform_int_distribution<size_t>(10, 3u << 20)(rng), 'x');
    for (size_t i = 0; i < content.size(); i += 97) content[i] = static_cast<char>('a' + rng() % 26);
    WriteFile(path, content);
    SetMtimeSecondsAgo(path, 100);
    const uint64_t offset = std::uniform_int_distribution<uint64_t>(1, content.size())(rng);
    auto stat = StatRegularFile(path);
    ASSERT_THAT(stat, IsOk());
    storage::FileProgress p = PartialProgress(content, offset, *stat, WallClockNs());

    auto same = DecideSource(path, p, false, WallClockNs());
    ASSERT_THAT(same, IsOk());
    EXPECT_EQ(same->action, SourceDecision::kResume);

    // Touched only: re-hashed, still resumes.
    SetMtimeSecondsAgo(path, 50);
    auto touched = DecideSource(path, p, false, WallClockNs());
    ASSERT_THAT(touched, IsOk());
    EXPECT_EQ(touched->action, SourceDecision::kResume);

    const size_t at = std::uniform_int_distribution<size_t>(0, offset - 1)(rng);
    std::string changed = content;
    changed[at] ^= 0x20;
    WriteFile(path, changed);
    auto d = DecideSource(path, p, false, WallClockNs());
    ASSERT_THAT(d, IsOk());
    EXPECT_EQ(d->action, SourceDecision::kRestartGroup) << "round " << round;
    EXPECT_THAT(d->why, HasSubstr("ingested before the interruption changed"));

    WriteFile(path, content.substr(0, offset - 1));
    auto shorter = DecideSource(path, p, false, WallClockNs());
    ASSERT_THAT(shorter, IsOk());
    EXPECT_EQ(shorter->action, SourceDecision::kRestartGroup);
    EXPECT_THAT(shorter->why, HasSubstr("now shorter"));
  }
}

// A complete file modified within kRacyNs of its check is re-hashed even
// with an equal stat; one checked long after its last modification is not.
TEST(SourceCheckTest, RacilyCleanFilesAreRehashed) {
  TempDir dir;
  const std::string path = (dir.path() / "f.jsonl").string();
  WriteFile(path, "one\ntwo\n");
  auto hashed = HashWholeFile(path);
  ASSERT_THAT(hashed, IsOk());
  storage::FileProgress p;
  p.complete = true;
  p.fingerprint = "xxh3c:8:not-this-content";  // a stale fingerprint tells who re-hashed
  RecordStat(hashed->stat, hashed->stat.mtime_ns + kRacyNs / 2, &p);
  auto racy = DecideSource(path, p, false, WallClockNs());
  ASSERT_THAT(racy, IsOk());
  EXPECT_EQ(racy->action, SourceDecision::kRestartGroup);

  RecordStat(hashed->stat, hashed->stat.mtime_ns + 2 * kRacyNs, &p);
  auto trusted = DecideSource(path, p, false, WallClockNs());
  ASSERT_THAT(trusted, IsOk());
  EXPECT_EQ(trusted->action, SourceDecision::kSkip);
  auto verified = DecideSource(path, p, true, WallClockNs());
  ASSERT_THAT(verified, IsOk());
  EXPECT_EQ(verified->action, SourceDecision::kRestartGroup);

  p.fingerprint = hashed->fingerprint;
  auto ok = DecideSource(path, p, true, WallClockNs());
  ASSERT_THAT(ok, IsOk());
  EXPECT_EQ(ok->action, SourceDecision::kSkip);
  EXPECT_FALSE(ok->refresh);
}

TEST(SourceCheckTest, NonRegularFilesAreErrors) {
  TempDir dir;
  EXPECT_THAT(DecideSource(dir.str(), std::nullopt, false, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is a directory")));
  EXPECT_THAT(DecideSource((dir.path() / "none").string(), std::nullopt, false, 0),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace m3serve::ingest
