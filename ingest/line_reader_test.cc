#include "ingest/line_reader.h"

#include <sys/stat.h>
#include <unistd.h>

#include <random>

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

// What the reader must produce, written the plain way: a BOM at the start is
// dropped, lines end at '\n', a last line may lack it, one trailing '\r' is
// not part of a line, and a line of more than `max` bytes (its '\r'
// counted) is oversize.
std::vector<ReadLine> Expected(const std::string& content, uint64_t max) {
  std::vector<ReadLine> out;
  size_t pos = content.rfind("\xEF\xBB\xBF", 0) == 0 ? 3 : 0;
  uint64_t number = 0;
  while (pos < content.size()) {
    size_t nl = content.find('\n', pos);
    size_t end = nl == std::string::npos ? content.size() : nl;
    std::string line = content.substr(pos, end - pos);
    if (line.size() > max) {
      out.push_back({"", ++number, line.size()});
    } else {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      out.push_back({line, ++number, 0});
    }
    pos = end + 1;
  }
  return out;
}

// Property: for random files (BOM or not, CRLF, empty lines, long and
// oversize lines, a missing last newline) and random chunk targets, line
// limits and maximum line sizes, the reader yields exactly the plain split,
// chunks cover the file without gap or overlap, and the fingerprint is the
// content hash, also when resumed at any chunk's end.
TEST(LineReaderTest, PropertyMatchesAPlainSplitForRandomFilesAndChunkings) {
  TempDir dir;
  std::mt19937_64 rng(20261202);
  for (int round = 0; round < 60; ++round) {
    std::string content = rng() % 4 == 0 ? "\xEF\xBB\xBF" : "";
    const int lines = static_cast<int>(rng() % 40);
    for (int i = 0; i < lines; ++i) {
      size_t len = 0;
      switch (rng() % 5) {
        case 0: len = 0; break;
        case 1: len = rng() % 16; break;
        case 2: len = rng() % 2000; break;
        case 3: len = rng() % (300 << 10); break;
        default: len = rng() % 100; break;
      }
      for (size_t k = 0; k < len; ++k) content.push_back(static_cast<char>('a' + (k + i) % 26));
      if (rng() % 3 == 0) content.push_back('\r');
      if (i + 1 < lines || rng() % 2 == 0) content.push_back('\n');
    }
    const uint64_t max = rng() % 3 == 0 ? 1 + rng() % 1000 : (rng() % 2 ? 200 << 10 : 1 << 30);
    const size_t target = 1 + rng() % (rng() % 2 ? 4096 : 1 << 20);
    const size_t max_lines = 1 + rng() % 8;
    SCOPED_TRACE(::testing::Message() << "round " << round << " bytes " << content.size() << " max " << max
                                      << " target " << target << " max_lines " << max_lines);
    auto p = dir.path() / ("r" + std::to_string(round) + ".jsonl");
    WriteFile(p, content);
    const std::vector<ReadLine> want = Expected(content, max);
    ChainedContentHash whole_hash;
    whole_hash.Update(content);

    auto r = LineReader::Open(p.string(), 0, 0, max);
    ASSERT_THAT(r, IsOk());
    std::vector<ReadLine> got;
    std::vector<LineChunk> chunks;
    uint64_t offset = 0;
    while (!(*r)->eof()) {
      LineChunk c;
      ASSERT_THAT((*r)->Next(target, max_lines, &c), IsOk());
      ASSERT_EQ(c.start_offset, offset);
      ASSERT_LE(c.lines.size(), max_lines);
      ASSERT_GE(c.buf.size(), kLinePadding);
      offset = c.end_offset;
      for (const auto& l : c.lines) got.push_back({std::string(c.text(l)), l.number, l.oversize});
      if (!c.lines.empty()) chunks.push_back(c);
    }
    EXPECT_EQ(offset, content.size());
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(got[i].number, want[i].number) << i;
      ASSERT_EQ(got[i].oversize, want[i].oversize) << i;
      ASSERT_EQ(got[i].text, want[i].text) << i;
    }
    ASSERT_THAT((*r)->FinishUnchanged(), IsOk());
    EXPECT_EQ(*(*r)->FinishUnchanged(), ContentFingerprint(whole_hash));

    if (chunks.empty()) continue;
    const LineChunk& stop = chunks[rng() % chunks.size()];
    LineReader::HashResume resume{stop.hash_chain, stop.hash_offset};
    auto rest = LineReader::Open(p.string(), stop.end_offset, stop.lines.back().number, max, &resume);
    ASSERT_THAT(rest, IsOk());
    std::vector<ReadLine> tail;
    LineChunk c;
    while (!(*rest)->eof()) {
      ASSERT_THAT((*rest)->Next(target, max_lines, &c), IsOk());
      for (const auto& l : c.lines) tail.push_back({std::string(c.text(l)), l.number, l.oversize});
    }
    const size_t skipped = static_cast<size_t>(stop.lines.back().number);
    ASSERT_EQ(tail.size(), want.size() - skipped);
    for (size_t i = 0; i < tail.size(); ++i) {
      ASSERT_EQ(tail[i].number, want[skipped + i].number);
      ASSERT_EQ(tail[i].text, want[skipped + i].text);
    }
    EXPECT_EQ(*(*rest)->FinishUnchanged(), ContentFingerprint(whole_hash));
  }
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
