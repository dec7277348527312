#include "ingest/line_reader.h"

#include <sys/stat.h>
#include <unistd.h>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/test_util.h"

namespace m3serve::ingest {
namespace {

using ::m3serve::ingest::testing::TempDir;
using ::m3serve::ingest::testing::WriteFile;
using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;

struct ReadLine {
  std::string text;
  uint64_t number;
  uint64_t oversize;
};

std::vector<ReadLine> ReadAll(const std::string& path, uint64_t offset = 0, uint64_t line = 0,
                              uint64_t max = 1 << 20, size_t target = 8) {
  auto r = LineReader::Open(path, offset, line, max);
  EXPECT_THAT(r, IsOk());
  std::vector<ReadLine> out;
  LineChunk c;
  while (!(*r)->eof()) {
    EXPECT_THAT((*r)->Next(target, 2, &c), IsOk());
    for (const auto& l : c.lines) out.push_back({std::string(c.text(l)), l.number, l.oversize});
    EXPECT_EQ(c.buf.size() % 1, 0u);
  }
  return out;
}

TEST(LineReaderTest, SplitsLinesHandlingBomCrlfAndMissingNewline) {
  TempDir dir;
  auto p = dir.path() / "a.jsonl";
  WriteFile(p, "\xEF\xBB\xBF{\"a\":1}\r\n\n{\"b\":2}\n{\"c\":3}");
  auto lines = ReadAll(p.string());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0].text, "{\"a\":1}");
  EXPECT_EQ(lines[1].text, "");
  EXPECT_EQ(lines[2].text, "{\"b\":2}");
  EXPECT_EQ(lines[2].number, 3u);
  EXPECT_EQ(lines[3].text, "{\"c\":3}");
}

TEST(LineReaderTest, ResumesAtOffsetWithLineNumbers) {
  TempDir dir;
  auto p = dir.path() / "a.jsonl";
  WriteFile(p, "one\ntwo\nthree\n");
  auto r = LineReader::Open(p.string(), 0, 0, 100);
  ASSERT_THAT(r, IsOk());
  LineChunk c;
  ASSERT_THAT((*r)->Next(1, 1, &c), IsOk());
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_EQ(c.end_offset, 4u);
  auto rest = ReadAll(p.string(), c.end_offset, 1);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].text, "two");
  EXPECT_EQ(rest[0].number, 2u);
  EXPECT_EQ(rest[1].number, 3u);
}

TEST(LineReaderTest, SkipsOversizeLinesWithoutBufferingThem) {
  TempDir dir;
  auto p = dir.path() / "a.jsonl";
  WriteFile(p, "short\n" + std::string(5 << 20, 'x') + "\nafter\n");
  auto lines = ReadAll(p.string(), 0, 0, 1 << 20, 1 << 20);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1].oversize, 5u << 20);
  EXPECT_EQ(lines[1].text, "");
  EXPECT_EQ(lines[2].text, "after");
  EXPECT_EQ(lines[2].number, 3u);
}

TEST(LineReaderTest, LongLinesAcrossBufferRefills) {
  TempDir dir;
  auto p = dir.path() / "a.jsonl";
  std::string big(3 << 20, 'y');
  WriteFile(p, big + "\n" + big);
  auto lines = ReadAll(p.string(), 0, 0, 1 << 30);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].text, big);
  EXPECT_EQ(lines[1].text, big);
}

TEST(LineReaderTest, ErrorsNameThePath) {
  TempDir dir;
  EXPECT_THAT(LineReader::Open((dir.path() / "missing").string(), 0, 0, 10),
              StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("missing")));
  EXPECT_THAT(LineReader::Open(dir.str(), 0, 0, 10), StatusIs(absl::StatusCode::kInvalidArgument));
}

// The fingerprint at EOF is the hash of the file's bytes (BOM and CRLF
// included), whether the file was read in one go or resumed mid-way.
TEST(LineReaderTest, FingerprintIsTheContentHashAlsoWhenResumed) {
  TempDir dir;
  auto p = dir.path() / "a.jsonl";
  std::string content = "\xEF\xBB\xBF";
  for (int i = 0; i < 100000; ++i) content += "{\"line\": " + std::to_string(i) + "}\r\n";
  WriteFile(p, content);
  ChainedContentHash expected;
  expected.Update(content);

  auto whole = LineReader::Open(p.string(), 0, 0, 1 << 20);
  ASSERT_THAT(whole, IsOk());
  LineChunk c, stop;
  bool saved = false;
  while (!(*whole)->eof()) {
    ASSERT_THAT((*whole)->Next(64 << 10, 100000, &c), IsOk());
    if (!saved && c.end_offset > (1u << 20) + 1000) {
      stop = c;
      saved = true;
    }
  }
  ASSERT_TRUE(saved);
  EXPECT_THAT((*whole)->FinishUnchanged(), IsOk());
  EXPECT_EQ(*(*whole)->FinishUnchanged(), ContentFingerprint(expected));

  LineReader::HashResume resume{stop.hash_chain, stop.hash_offset};
  EXPECT_EQ(stop.hash_offset, 1u << 20);
  auto rest = LineReader::Open(p.string(), stop.end_offset, stop.lines.back().number, 1 << 20, &resume);
  ASSERT_THAT(rest, IsOk());
  while (!(*rest)->eof()) ASSERT_THAT((*rest)->Next(64 << 10, 100000, &c), IsOk());
  EXPECT_EQ(*(*rest)->FinishUnchanged(), ContentFingerprint(expected));
  // Without a saved state the prefix is hashed from byte 0.
  auto cold = LineReader::Open(p.string(), stop.end_offset, stop.lines.back().number, 1 << 20);
  while (!(*cold)->eof()) ASSERT_THAT((*cold)->Next(64 << 10, 100000, &c), IsOk());
  EXPECT_EQ(*(*cold)->FinishUnchanged(), ContentFingerprint(expected));
}

TEST(LineReaderTest, FileChangedWhileReadIsReported) {
  TempDir dir;
  auto p = dir.path() / "a.jsonl";
  std::string content;
  for (int i = 0; i < 1000; ++i) content += "{\"line\": " + std::to_string(i) + "}\n";
  WriteFile(p, content);
  auto r = LineReader::Open(p.string(), 0, 0, 1 << 20);
  ASSERT_THAT(r, IsOk());
  LineChunk c;
  ASSERT_THAT((*r)->Next(1024, 10, &c), IsOk());
  // Shrunk to a third while the reader is part-way (the reader's buffer may
  // already hold the rest; the stat at EOF still tells).
  ::truncate(p.c_str(), static_cast<off_t>(content.size() / 3));
  while (!(*r)->eof()) ASSERT_THAT((*r)->Next(1024, 10, &c), IsOk());
  EXPECT_THAT((*r)->FinishUnchanged(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::HasSubstr("file changed while it was read (its size went from")));
}

TEST(LineReaderTest, RefusesAFifoWithoutBlocking) {
  TempDir dir;
  auto p = dir.path() / "train.jsonl";
  ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0);
  EXPECT_THAT(LineReader::Open(p.string(), 0, 0, 10),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("is a FIFO (named pipe), not a regular file")));
  EXPECT_THAT(ReadRegularFile(p.string(), 100), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(StatRegularFile(p.string()), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace m3serve::ingest
