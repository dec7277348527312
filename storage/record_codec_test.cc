#include "storage/record_codec.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace m3serve::storage {
namespace {

using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;

Instance Sample() {
  Instance x;
  x.instruction = "Describe the image.";
  x.inputs = "";
  x.outputs = std::string("A cat \xE7\x8C\xAB on a mat.\n", 21);
  x.images = {ContentHash("a"), ContentHash("b"), ContentHash("a")};
  x.source = {"data/captioning/coco/train.jsonl", 123456789, 4};
  x.meta_json = R"({"targets":["x"]})";
  x.template_vars = {{"HYPO", "two dogs"}};
  return x;
}

TEST(RecordCodecTest, InstanceRoundTrips) {
  Instance in = Sample(), out;
  ASSERT_THAT(DecodeInstance(EncodeInstance(in), &out), IsOk());
  EXPECT_EQ(out, in);
}

TEST(RecordCodecTest, TruncatedInstanceIsDataLoss) {
  std::string bytes = EncodeInstance(Sample());
  Instance out;
  for (size_t cut : {size_t{0}, size_t{1}, bytes.size() / 2, bytes.size() - 1}) {
    EXPECT_THAT(DecodeInstance(bytes.substr(0, cut), &out), StatusIs(absl::StatusCode::kDataLoss))
        << cut;
  }
  EXPECT_THAT(DecodeInstance(bytes + "x", &out), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(RecordCodecTest, OtherRecordsRoundTrip) {
  TaskInfo t{"science-qa", "reasoning", "ScienceQA", "CC BY-NC-SA", CommercialUse::kNo, false,
             Modality::kImage, "en"};
  TaskInfo t2;
  ASSERT_THAT(DecodeTaskInfo(EncodeTaskInfo(t), &t2), IsOk());
  EXPECT_EQ(t, t2);

  ImageMeta m{ImageFormat::kPng, 640, 480, 123456}, m2;
  std::optional<PackLocation> where = PackLocation{9, 1};
  ASSERT_THAT(DecodeImageMeta(EncodeImageMeta(m), &m2, &where), IsOk());
  EXPECT_EQ(m, m2);
  EXPECT_EQ(where, std::nullopt);  // a record of schema 1: bytes in the images column family
  const PackLocation loc{7, (1ull << 40) + 3};
  ASSERT_THAT(DecodeImageMeta(EncodeImageMeta(m, &loc), &m2, &where), IsOk());
  EXPECT_EQ(m, m2);
  EXPECT_EQ(where, loc);

  std::vector<std::string> pool = {"a", "", "c"}, pool2;
  ASSERT_THAT(DecodeStringList(EncodeStringList(pool), &pool2), IsOk());
  EXPECT_EQ(pool, pool2);

  FileProgress p{"fp", 1 << 30, 77, true, 70, 350, 7}, p2;
  ASSERT_THAT(DecodeFileProgress(EncodeFileProgress(p), &p2), IsOk());
  EXPECT_EQ(p, p2);
}

TEST(RecordCodecTest, OutOfRangeFieldsAreDataLoss) {
  // A corrupt record whose enums or flags hold values no encoder writes is
  // refused, not turned into a task or image nobody stored.
  TaskInfo t{"vqa-v2", "vqa", "VQA v2", "CC BY 4.0", CommercialUse::kYes, false, Modality::kImage, "en"};
  std::string bytes = EncodeTaskInfo(t);
  const size_t enums = bytes.size() - 1 - 2 - 3;  // commercial use, held out, modality, then "en"
  for (size_t at = enums; at < enums + 3; ++at) {
    std::string bad = bytes;
    bad[at] = 5;
    TaskInfo out;
    EXPECT_THAT(DecodeTaskInfo(bad, &out), StatusIs(absl::StatusCode::kDataLoss)) << at;
  }
  std::string meta = EncodeImageMeta({ImageFormat::kJpeg, 2, 2, 10});
  meta[1] = 9;  // no such format
  ImageMeta m;
  EXPECT_THAT(DecodeImageMeta(meta, &m), StatusIs(absl::StatusCode::kDataLoss));
  const PackLocation loc{1, 2};
  std::string located = EncodeImageMeta({ImageFormat::kJpeg, 2, 2, 10}, &loc);
  located[located.size() - 3] = 2;  // no such location kind
  EXPECT_THAT(DecodeImageMeta(located, &m), StatusIs(absl::StatusCode::kDataLoss));
  located = EncodeImageMeta({ImageFormat::kJpeg, 2, 2, 10}, &loc);
  located.pop_back();  // a location cut short
  EXPECT_THAT(DecodeImageMeta(located, &m), StatusIs(absl::StatusCode::kDataLoss));
  std::string progress = EncodeFileProgress({"", 1, 1, true, 1, 1, 0});
  progress[4] = 2;  // complete flag
  FileProgress p;
  EXPECT_THAT(DecodeFileProgress(progress, &p), StatusIs(absl::StatusCode::kDataLoss));
}

// Progress records written before the content-identity fields still decode
// (the fields stay at their defaults, so the next run re-hashes the file), and
// the new fields round-trip.
TEST(RecordCodecTest, ProgressRecordsOfTheFirstLayoutStillDecode) {
  FileProgress full{"xxh3c:9:ab", 9, 2, true, 2, 2, 0};
  full.size = 9;
  full.mtime_ns = 1'700'000'000'123'456'789;
  full.inode = 77;
  full.device = 2049;
  full.checked_ns = 1'700'000'100'000'000'000;
  full.hash_chain = ContentHash("c");
  full.hash_offset = 1 << 20;
  full.prefix_hash = ContentHash("p");
  full.changed = true;
  FileProgress back;
  ASSERT_THAT(DecodeFileProgress(EncodeFileProgress(full), &back), IsOk());
  EXPECT_EQ(back, full);

  // The first layout: version, fingerprint, offset, line, complete, rows,
  // instances, rejected.
  const std::string old = std::string("\x01\x04v1:x", 6) + std::string("\x09\x02\x01\x02\x02\x00", 6);
  FileProgress p;
  ASSERT_THAT(DecodeFileProgress(old, &p), IsOk());
  EXPECT_EQ(p.fingerprint, "v1:x");
  EXPECT_EQ(p.offset, 9u);
  EXPECT_TRUE(p.complete);
  EXPECT_EQ(p.checked_ns, 0);
  EXPECT_FALSE(p.changed);
  // Cut inside the new fields: corrupt.
  std::string cut = EncodeFileProgress(full);
  cut.resize(cut.size() - 5);
  EXPECT_THAT(DecodeFileProgress(cut, &p), StatusIs(absl::StatusCode::kDataLoss));
}

// Side files round-trip (an empty list too, which is known and differs from a
// record written before side files, whose side_known stays false); a record
// cut inside them, or claiming more than it holds, is corrupt.
TEST(RecordCodecTest, ProgressSideFilesRoundTrip) {
  FileProgress before{"xxh3c:9:ab", 9, 2, true, 2, 2, 0};
  FileProgress back;
  ASSERT_THAT(DecodeFileProgress(EncodeFileProgress(before), &back), IsOk());
  EXPECT_FALSE(back.side_known);

  FileProgress none = before;
  none.side_known = true;
  ASSERT_THAT(DecodeFileProgress(EncodeFileProgress(none), &back), IsOk());
  EXPECT_EQ(back, none);

  FileProgress full = none;
  full.side_files.push_back({"pool:en:instructions.json", ContentHash("pool"), 120, 1'700'000'000'000'000'001,
                             5, 2049, 1'700'000'100'000'000'000});
  full.side_files.push_back({"english", ContentHash("rows"), 1 << 30, 2, 6, 2049, 3});
  ASSERT_THAT(DecodeFileProgress(EncodeFileProgress(full), &back), IsOk());
  EXPECT_EQ(back, full);

  std::string cut = EncodeFileProgress(full);
  cut.resize(cut.size() - 3);
  EXPECT_THAT(DecodeFileProgress(cut, &back), StatusIs(absl::StatusCode::kDataLoss));
  std::string lying = EncodeFileProgress(none);
  lying.back() = '\x7f';  // 127 side files, none there
  EXPECT_THAT(DecodeFileProgress(lying, &back), StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace m3serve::storage
