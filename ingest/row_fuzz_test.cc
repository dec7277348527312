// Deterministic randomized ("fuzz") test of the row mappings: mutated rows of
// every task layout go through simdjson and MapRow; each must be mapped or
// rejected with a reason, never crash. Seeds are fixed, so failures reproduce.
#include <random>

#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "ingest/row_mapper.h"
#include "ingest/test_util.h"

namespace m3serve::ingest {
namespace {

TEST(RowFuzzTest, MutatedRowsAreMappedOrRejectedWithAReason) {
  const std::string img = testing::ImageB64(1), img2 = testing::ImageB64(2, ".png");
  const std::vector<std::pair<Mapping, std::string>> seeds = {
      {Mapping::kCoco, R"({"image": "$I", "meta": {"targets": ["a", "b"]}})"},
      {Mapping::kVqaV2, R"({"question": "q", "img_str": "$I", "original_answer": "2", "paraphrased_answer": "Sorry"})"},
      {Mapping::kOkvqa, R"({"question": "q", "image_str": "$I", "answer": "a", "paraphrased_answer": "p"})"},
      {Mapping::kVist, R"({"images": ["$I", "$J"], "sentences": ["x", "y"]})"},
      {Mapping::kSnliVe, R"({"hypothesis": "h", "image_base64_str": "$I", "label": "neutral", "rationale": "r"})"},
      {Mapping::kRephrased, R"({"meta": {"instruction": "i", "inputs": "n", "image_base64_str": ["$J"]}, "answer": "a"})"},
      {Mapping::kImagenet, R"({"img_str": "$I", "label": "tench"})"},
      {Mapping::kGeneric, R"({"instruction": "i", "inputs": "", "image_base64_str": ["$I"], "outputs": "o"})"},
  };
  std::mt19937_64 rng(42);
  simdjson::dom::parser parser;
  int mapped = 0, rejected = 0;
  for (int i = 0; i < 6000; ++i) {
    const auto& [mapping, tmpl] = seeds[i % seeds.size()];
    std::string row = absl::StrReplaceAll(tmpl, {{"$I", img}, {"$J", img2}});
    const int edits = static_cast<int>(rng() % 5);
    for (int e = 0; e < edits && !row.empty(); ++e) {
      // Mutate mostly the JSON structure (the first 80 bytes) and sometimes the image.
      size_t at = (rng() % 4 == 0) ? rng() % row.size() : rng() % std::min<size_t>(row.size(), 80);
      switch (rng() % 4) {
        case 0: row[at] = static_cast<char>(rng()); break;
        case 1: row.erase(at, 1 + rng() % 8); break;
        case 2: row.insert(at, std::string(1 + rng() % 3, "{}[]\",:0a\\"[rng() % 10])); break;
        default: row.resize(at); break;
      }
    }
    std::string padded = row + std::string(64, ' ');
    simdjson::dom::element e;
    if (parser.parse(padded.data(), row.size(), false).get(e)) {
      ++rejected;
      continue;
    }
    RowContext ctx;
    ctx.mapping = mapping;
    ctx.line = 1;
    std::vector<DraftInstance> out;
    absl::Status s = MapRow(e, ctx, &out);
    if (s.ok()) {
      ++mapped;
      ASSERT_FALSE(out.empty());
      for (const auto& d : out) ASSERT_FALSE(d.images.empty());
    } else {
      ++rejected;
      ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
      ASSERT_FALSE(s.message().empty());
    }
  }
  EXPECT_GT(mapped, 500);
  EXPECT_GT(rejected, 500);
}

}  // namespace
}  // namespace m3serve::ingest
