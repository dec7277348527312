// EnglishRowsAhead: English rows files loaded ahead of need, within a budget.
#include "ingest/english_rows.h"

#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ingest/test_util.h"

namespace m3serve::ingest {
namespace {

namespace fs = std::filesystem;
using ::m3serve::ingest::testing::ImageB64;
using ::m3serve::ingest::testing::TempDir;
using ::m3serve::ingest::testing::WriteFile;

// The image hashes per line and the ids of a loaded file: what a translated
// row can take from it.
std::map<uint64_t, std::vector<std::string>> Images(const EnglishRows& rows) {
  std::map<uint64_t, std::vector<std::string>> out;
  for (const auto& [line, row] : rows.by_line) {
    for (const ImagePtr& img : row.images) out[line].push_back(img->hash.Hex());
    if (!row.error.empty()) out[line].push_back("error: " + row.error);
  }
  return out;
}

// Property: whatever the budget, the number of threads and the order files
// are offered and taken in, the bytes offered and not yet taken never exceed
// the budget, an offer is refused only when it would, and every file taken
// holds what loading it on the spot gives (images per line, ids, errors).
TEST(EnglishRowsAheadTest, StaysWithinItsBudgetAndGivesWhatALoadOnTheSpotGives) {
  TempDir dir;
  std::mt19937 rng(500);
  std::vector<std::pair<fs::path, uint64_t>> files;
  int seed = 0;
  for (int f = 0; f < 12; ++f) {
    std::string text;
    const int n = std::uniform_int_distribution<int>(1, 8)(rng);
    for (int i = 0; i < n; ++i) {
      if (rng() % 7 == 0) {
        absl::StrAppend(&text, "{\"question\": \"broken\", \"img_str\": \"!!\"}\n");  // a row without a usable image
      } else {
        absl::StrAppend(&text, "{\"id\": \"q", f, "-", i, "\", \"img_str\": \"", ImageB64(++seed), "\"}\n");
      }
    }
    const fs::path p = dir.path() / absl::StrCat("train_500_", f, ".jsonl");
    WriteFile(p, text);
    files.emplace_back(p, text.size());
  }
  files.emplace_back(dir.path() / "missing_500.jsonl", 100);  // cannot be read: rows with file_error
  const ImageCheckOptions images;
  for (int round = 0; round < 20; ++round) {
    const uint64_t budget = std::uniform_int_distribution<uint64_t>(1, 60000)(rng);
    const int threads = std::uniform_int_distribution<int>(1, 4)(rng);
    EnglishRowsAhead ahead(threads, budget, images, 1 << 20);
    std::vector<size_t> order(files.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    size_t next_offer = 0;
    for (size_t take = 0; take < order.size(); ++take) {
      // Offer as many of the next files as fit, then take the next one needed.
      while (next_offer < order.size()) {
        const auto& [path, bytes] = files[order[next_offer]];
        const uint64_t before = ahead.held_bytes();
        const bool fits = before + bytes <= budget;
        ASSERT_EQ(ahead.Offer(path.string(), path.filename().string(), bytes), fits);
        ASSERT_LE(ahead.held_bytes(), budget);
        if (!fits) break;
        ASSERT_TRUE(ahead.Offered(path.string()));
        ++next_offer;
      }
      const auto& [path, bytes] = files[order[take]];
      std::shared_ptr<const EnglishRows> got = ahead.Take(path.string());
      if (take >= next_offer) {
        ASSERT_EQ(got, nullptr);  // never offered (did not fit): loaded on the spot by the caller
        next_offer = std::max(next_offer, take + 1);
        continue;
      }
      ASSERT_NE(got, nullptr);
      EXPECT_FALSE(ahead.Offered(path.string()));
      auto spot = LoadEnglishRows(path.string(), path.filename().string(), images, 1 << 20);
      EXPECT_EQ(got->rel_path, spot->rel_path);
      EXPECT_EQ(got->file_error, spot->file_error);
      EXPECT_EQ(got->line_of_id, spot->line_of_id);
      EXPECT_EQ(Images(*got), Images(*spot)) << path;
    }
    EXPECT_EQ(ahead.held_bytes(), 0u);
  }
}

// Files offered and never taken (the run stopped) do not keep it from ending.
TEST(EnglishRowsAheadTest, EndsWithFilesNeverTaken) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 20; ++i) absl::StrAppend(&text, "{\"img_str\": \"", ImageB64(i), "\"}\n");
  for (int f = 0; f < 6; ++f) WriteFile(dir.path() / absl::StrCat(f, ".jsonl"), text);
  EnglishRowsAhead ahead(2, 1 << 30, ImageCheckOptions{}, 1 << 20);
  for (int f = 0; f < 6; ++f) {
    const fs::path p = dir.path() / absl::StrCat(f, ".jsonl");
    ASSERT_TRUE(ahead.Offer(p.string(), p.filename().string(), text.size()));
  }
  ASSERT_NE(ahead.Take((dir.path() / "3.jsonl").string()), nullptr);  // waits for 0..3, others may still run
}

}  // namespace
}  // namespace m3serve::ingest
