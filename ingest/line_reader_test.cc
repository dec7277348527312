#include "ingest/line_reader.h"

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

TEST(LineReaderTest, FingerprintChangesWithContent) {
  TempDir dir;
  auto p = dir.path() / "a.jsonl";
  WriteFile(p, "one\n");
  auto a = FileFingerprint(p.string());
  WriteFile(p, "one\ntwo\n");
  auto b = FileFingerprint(p.string());
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(*b, *FileFingerprint(p.string()));
}

}  // namespace
}  // namespace m3serve::ingest
