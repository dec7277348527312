#include "storage/store.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/image_index.h"
#include "storage/record_codec.h"
#include "storage/verify.h"

namespace m3serve::storage {
namespace {

using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("m3serve_store_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Store> OpenRw() {
    auto s = Store::Open({.path = dir_.string()});
    EXPECT_THAT(s, IsOk());
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Write a small two-group store with shared images: their bytes in the
  // batch, or (`packs`) in image pack files.
  void Populate(Store* store, bool packs = false) {
    StoreWriteBatch b;
    b.PutTask({"coco", "captioning", "MS COCO Captions", "Custom", CommercialUse::kUnknown,
               false, Modality::kImage, "en"});
    std::string img1 = "image-one-bytes", img2 = "image-two-bytes";
    if (packs) {
      auto w = store->NewImageWriter();
      ASSERT_THAT(w, IsOk());
      ASSERT_THAT((*w)->Add(ContentHash(img1), {ImageFormat::kJpeg, 4, 3, img1.size()}, img1, &b), IsOk());
      ASSERT_THAT((*w)->Add(ContentHash(img2), {ImageFormat::kPng, 8, 6, img2.size()}, img2, &b), IsOk());
      EXPECT_THAT((*w)->Add(ContentHash(img2), {ImageFormat::kPng, 8, 6, 1}, img2, &b),
                  StatusIs(absl::StatusCode::kInvalidArgument));
    } else {
      b.PutImage(ContentHash(img1), {ImageFormat::kJpeg, 4, 3, img1.size()}, img1);
      b.PutImage(ContentHash(img2), {ImageFormat::kPng, 8, 6, img2.size()}, img2);
    }
    for (uint64_t i = 0; i < 5; ++i) {
      Instance x;
      x.group = {"coco", "train", "en"};
      x.ordinal = i;
      x.outputs = "caption " + std::to_string(i);
      x.images = {ContentHash(i % 2 ? img2 : img1)};
      x.source = {"train.jsonl", i + 1, 0};
      b.PutInstance(x);
    }
    Instance v;
    v.group = {"coco", "validation", "en"};
    v.outputs = "val";
    v.images = {ContentHash(img1), ContentHash(img2)};
    b.PutInstance(v);
    b.PutCount({"coco", "train", "en"}, 5);
    b.PutCount({"coco", "validation", "en"}, 1);
    b.PutImageCount(2);
    b.PutPool("coco", "en", {"Describe it.", "Caption it."});
    ASSERT_THAT(store->Write(&b), IsOk());
  }

  std::filesystem::path dir_;
};

TEST_F(StoreTest, WritesAndReadsBack) {
  auto store = OpenRw();
  Populate(store.get());
  auto x = store->GetInstance({"coco", "train", "en"}, 3);
  ASSERT_THAT(x, IsOk());
  EXPECT_EQ(x->outputs, "caption 3");
  EXPECT_EQ(x->Id(), "coco/train/en/3");
  EXPECT_THAT(store->GetInstance({"coco", "train", "en"}, 5), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->GetImage(ContentHash("image-two-bytes")), IsOk());
  EXPECT_EQ(*store->GetImage(ContentHash("image-two-bytes")), "image-two-bytes");
  EXPECT_THAT(store->GetImage(ContentHash("nope")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(store->GetImageMeta(ContentHash("image-one-bytes"))->width, 4u);

  auto cat = store->ReadCatalog();
  ASSERT_THAT(cat, IsOk());
  EXPECT_EQ(cat->TotalInstances(), 6u);
  EXPECT_EQ(cat->unique_images, 2u);
  EXPECT_EQ(cat->tasks.at("coco").license, "Custom");
  EXPECT_EQ(cat->pools.at({"coco", "en"}).size(), 2u);
}

TEST_F(StoreTest, ScanGroupStaysInsideItsRange) {
  auto store = OpenRw();
  Populate(store.get());
  std::vector<uint64_t> seen;
  ASSERT_THAT(store->ScanGroup({"coco", "train", "en"}, 1, 0, [&](Instance&& x) {
    EXPECT_EQ(x.group.split, "train");
    seen.push_back(x.ordinal);
    return true;
  }), IsOk());
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2, 3, 4}));
  seen.clear();
  ASSERT_THAT(store->ScanGroup({"coco", "train", "en"}, 0, 2, [&](Instance&& x) {
    seen.push_back(x.ordinal);
    return true;
  }), IsOk());
  EXPECT_EQ(seen, (std::vector<uint64_t>{0, 1}));
}

TEST_F(StoreTest, MultiGetReportsEachSlot) {
  auto store = OpenRw();
  Populate(store.get());
  auto got = store->MultiGetInstances({{{"coco", "train", "en"}, 4},
                                       {{"coco", "train", "en"}, 99},
                                       {{"coco", "validation", "en"}, 0}});
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0]->outputs, "caption 4");
  EXPECT_THAT(got[1], StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(got[2]->outputs, "val");
}

TEST_F(StoreTest, ReadOnlyOpenSharesAndRefusesWrites) {
  {
    auto store = OpenRw();
    Populate(store.get());
  }
  auto a = Store::Open({.path = dir_.string(), .read_only = true});
  auto b = Store::Open({.path = dir_.string(), .read_only = true});
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ((*a)->ReadCatalog()->fingerprint, (*b)->ReadCatalog()->fingerprint);
  StoreWriteBatch batch;
  batch.PutImageCount(9);
  EXPECT_THAT((*a)->Write(&batch), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(StoreTest, SecondWriterIsRefused) {
  auto store = OpenRw();
  EXPECT_THAT(Store::Open({.path = dir_.string()}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("another process")));
}

TEST_F(StoreTest, MissingStoreIsNotFound) {
  EXPECT_THAT(Store::Open({.path = dir_.string(), .read_only = true}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no m3serve store")));
}

TEST_F(StoreTest, ProgressRoundTrips) {
  auto store = OpenRw();
  EXPECT_FALSE(store->GetProgress("src")->has_value());
  StoreWriteBatch b;
  b.PutProgress("src", {"fp", 100, 3, false, 2, 2, 1});
  ASSERT_THAT(store->Write(&b), IsOk());
  auto p = store->GetProgress("src");
  ASSERT_THAT(p, IsOk());
  ASSERT_TRUE(p->has_value());
  EXPECT_EQ((*p)->offset, 100u);
}

TEST_F(StoreTest, VerifyPassesThenFindsRemovedImage) {
  auto store = OpenRw();
  Populate(store.get());
  auto ok = VerifyStore(*store);
  ASSERT_THAT(ok, IsOk());
  EXPECT_TRUE(ok->ok()) << (ok->problems.empty() ? "" : ok->problems[0]);
  EXPECT_EQ(ok->instances, 6u);
  EXPECT_EQ(ok->images, 2u);

  ASSERT_THAT(store->DeleteImage(ContentHash("image-two-bytes")), IsOk());
  auto bad = VerifyStore(*store);
  ASSERT_THAT(bad, IsOk());
  EXPECT_FALSE(bad->ok());
  EXPECT_THAT(bad->problems, ::testing::Contains(HasSubstr("references missing image")));
  EXPECT_THAT(bad->problems, ::testing::Contains(HasSubstr("unique images")));
  EXPECT_NE(bad->digest, ok->digest);
}

TEST_F(StoreTest, VerifyFindsOrphansAndCountMismatch) {
  auto store = OpenRw();
  Populate(store.get());
  StoreWriteBatch b;
  b.PutImage(ContentHash("orphan"), {ImageFormat::kJpeg, 1, 1, 6}, "orphan");
  b.PutCount({"coco", "train", "en"}, 7);
  ASSERT_THAT(store->Write(&b), IsOk());
  auto r = VerifyStore(*store);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(r->problems, ::testing::Contains(HasSubstr("orphan")));
  EXPECT_THAT(r->problems, ::testing::Contains(HasSubstr("catalog count 7, index holds 5")));
}

TEST_F(StoreTest, CheckpointOpensAsAStore) {
  auto store = OpenRw();
  Populate(store.get());
  auto cp = dir_.string() + "_cp";
  std::filesystem::remove_all(cp);
  ASSERT_THAT(store->Checkpoint(cp), IsOk());
  auto copy = Store::Open({.path = cp, .read_only = true});
  ASSERT_THAT(copy, IsOk());
  EXPECT_EQ((*copy)->ReadCatalog()->TotalInstances(), 6u);
  EXPECT_EQ(VerifyStore(**copy)->digest, VerifyStore(*store)->digest);
  copy->reset();
  std::filesystem::remove_all(cp);
}

TEST_F(StoreTest, CreationIsAtomicAndCleansUpKilledCreations) {
  namespace fs = std::filesystem;
  // What a creation killed part-way leaves: a hidden sibling directory named
  // after a process that is gone, holding a half-made database.
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  const fs::path leftover =
      dir_.parent_path() / ("." + dir_.filename().string() + ".creating." + std::to_string(child));
  fs::create_directories(leftover);
  { std::ofstream(leftover / "MANIFEST-000001") << "half"; }
  // Nothing sits at the store path itself, so readers see no store at all.
  EXPECT_THAT(Store::Open({.path = dir_.string(), .read_only = true}),
              StatusIs(absl::StatusCode::kNotFound));

  auto store = OpenRw();
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(fs::exists(leftover));
  store.reset();
  // A fresh store opens read-only with every column family present.
  auto ro = Store::Open({.path = dir_.string(), .read_only = true});
  ASSERT_THAT(ro, IsOk());
  EXPECT_THAT((*ro)->ReadCatalog(), IsOk());
  EXPECT_THAT((*ro)->ForEachProgress([](absl::string_view, const FileProgress&) { return true; }),
              IsOk());
}

TEST_F(StoreTest, RefusesToCreateInANonEmptyDirectory) {
  std::filesystem::create_directories(dir_);
  { std::ofstream(dir_ / "notes.txt") << "mine"; }
  EXPECT_THAT(Store::Open({.path = dir_.string()}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("exists and is not an m3serve store")));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "notes.txt"));
  // An empty directory is fine.
  std::filesystem::remove(dir_ / "notes.txt");
  EXPECT_NE(OpenRw(), nullptr);
}

TEST_F(StoreTest, DeleteGroupThenSweepLeavesAConsistentStore) {
  auto store = OpenRw();
  Populate(store.get());
  StoreWriteBatch b;
  b.DeleteGroup({"coco", "train", "en"});
  b.MarkImageSweepPending(true);
  ASSERT_THAT(store->Write(&b), IsOk());
  EXPECT_TRUE(*store->ImageSweepPending());
  // Both images are still used by the validation instance: nothing to sweep.
  EXPECT_EQ(*store->SweepUnreferencedImages(), 0u);
  EXPECT_FALSE(*store->ImageSweepPending());
  auto c = store->ReadCatalog();
  EXPECT_EQ(c->counts.count({"coco", "train", "en"}), 0u);
  EXPECT_EQ(c->TotalInstances(), 1u);
  auto v = VerifyStore(*store);
  EXPECT_TRUE(v->ok()) << v->problems[0];

  StoreWriteBatch b2;
  b2.DeleteGroup({"coco", "validation", "en"});
  ASSERT_THAT(store->Write(&b2), IsOk());
  EXPECT_EQ(*store->SweepUnreferencedImages(), 2u);
  EXPECT_EQ(store->ReadCatalog()->unique_images, 0u);
  EXPECT_TRUE(VerifyStore(*store)->ok());
}

size_t PackFiles(const std::filesystem::path& store) {
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(store / "packs", ec)) n += e.path().extension() == ".pack";
  return n;
}

// Images in pack files read, verify, checkpoint and sweep as images in the
// column family do, with the same digest; both kinds mix in one store.
TEST_F(StoreTest, PackedImagesReadVerifyCheckpointAndSweepLikeInlineOnes) {
  const std::filesystem::path inline_dir = dir_.string() + "_inline";
  std::filesystem::remove_all(inline_dir);
  Hash128 inline_digest;
  {
    auto plain = Store::Open({.path = inline_dir.string()});
    ASSERT_THAT(plain, IsOk());
    Populate(plain->get());
    inline_digest = VerifyStore(**plain)->digest;
  }
  std::filesystem::remove_all(inline_dir);

  auto opened = Store::Open({.path = dir_.string(), .pack_file_bytes = 64});  // an image per file
  ASSERT_THAT(opened, IsOk());
  std::unique_ptr<Store> store = std::move(*opened);
  Populate(store.get(), /*packs=*/true);
  EXPECT_EQ(PackFiles(dir_), 2u);
  EXPECT_EQ(*store->GetImage(ContentHash("image-two-bytes")), "image-two-bytes");
  EXPECT_EQ(store->GetImageMeta(ContentHash("image-one-bytes"))->width, 4u);
  auto v = VerifyStore(*store);
  ASSERT_THAT(v, IsOk());
  EXPECT_TRUE(v->ok()) << v->problems[0];
  EXPECT_EQ(v->digest, inline_digest);
  EXPECT_EQ(v->image_bytes, 30u);

  // Reopened read-only, and as a checkpoint whose source is gone.
  ASSERT_THAT(store->Flush(), IsOk());
  const std::string cp = dir_.string() + "_cp";
  std::filesystem::remove_all(cp);
  ASSERT_THAT(store->Checkpoint(cp), IsOk());
  store.reset();
  {
    auto ro = Store::Open({.path = dir_.string(), .read_only = true});
    ASSERT_THAT(ro, IsOk());
    EXPECT_EQ(*(*ro)->GetImage(ContentHash("image-one-bytes")), "image-one-bytes");
    EXPECT_THAT((*ro)->CheckFiles(), IsOk());
    EXPECT_THAT((*ro)->NewImageWriter(), StatusIs(absl::StatusCode::kFailedPrecondition));
  }
  {
    std::filesystem::rename(dir_, dir_.string() + "_away");
    auto copy = Store::Open({.path = cp, .read_only = true});
    ASSERT_THAT(copy, IsOk());
    EXPECT_EQ(*(*copy)->GetImage(ContentHash("image-two-bytes")), "image-two-bytes");
    EXPECT_EQ(VerifyStore(**copy)->digest, inline_digest);
    std::filesystem::rename(dir_.string() + "_away", dir_);
  }
  std::filesystem::remove_all(cp);

  // A third image with its bytes in the batch: ForEachImage visits all three
  // in hash order, whichever place holds their bytes.
  store = std::move(*Store::Open({.path = dir_.string(), .pack_file_bytes = 64}));
  StoreWriteBatch b;
  b.PutImage(ContentHash("inline"), {ImageFormat::kJpeg, 1, 1, 6}, "inline");
  ASSERT_THAT(store->Write(&b), IsOk());
  std::vector<std::pair<Hash128, std::string>> seen;
  ASSERT_THAT(store->ForEachImage([&](const Hash128& h, absl::string_view bytes) {
    seen.emplace_back(h, std::string(bytes));
    return true;
  }), IsOk());
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  for (const auto& [h, bytes] : seen) EXPECT_EQ(ContentHash(bytes), h);

  // The sweep deletes the unreferenced images and the files only they were in.
  StoreWriteBatch drop;
  drop.DeleteGroup({"coco", "train", "en"});
  ASSERT_THAT(store->Write(&drop), IsOk());
  EXPECT_EQ(*store->SweepUnreferencedImages(), 1u);  // "inline"; the validation instance uses both others
  EXPECT_EQ(PackFiles(dir_), 2u);
  drop.DeleteGroup({"coco", "validation", "en"});
  ASSERT_THAT(store->Write(&drop), IsOk());
  EXPECT_EQ(*store->SweepUnreferencedImages(), 2u);
  EXPECT_EQ(PackFiles(dir_), 0u);
  EXPECT_TRUE(VerifyStore(*store)->ok());
}

// The sweep moves the live images out of a pack file that is mostly dead
// bytes, and leaves a file that is mostly live alone.
TEST_F(StoreTest, SweepCompactsMostlyDeadPackFiles) {
  auto store = OpenRw();
  std::vector<std::string> images;
  for (int i = 0; i < 8; ++i) images.push_back(std::string(1000, static_cast<char>('a' + i)));
  StoreWriteBatch b;
  {
    auto first = *store->NewImageWriter();  // file 1: images 0-3
    for (int i = 0; i < 4; ++i) {
      ASSERT_THAT(first->Add(ContentHash(images[i]), {ImageFormat::kJpeg, 1, 1, 1000}, images[i], &b), IsOk());
    }
  }
  {
    auto second = *store->NewImageWriter();  // file 2: images 4-7
    for (int i = 4; i < 8; ++i) {
      ASSERT_THAT(second->Add(ContentHash(images[i]), {ImageFormat::kJpeg, 1, 1, 1000}, images[i], &b), IsOk());
    }
  }
  b.PutTask({"coco", "captioning", "MS COCO Captions", "Custom", CommercialUse::kUnknown, false, Modality::kImage,
             "en"});
  // File 1 keeps one image of four (mostly dead), file 2 three of four.
  const std::vector<int> used = {2, 4, 5, 6};
  for (uint64_t k = 0; k < used.size(); ++k) {
    Instance x;
    x.group = {"coco", "train", "en"};
    x.ordinal = k;
    x.outputs = "caption";
    x.images = {ContentHash(images[used[k]])};
    b.PutInstance(x);
  }
  b.PutCount({"coco", "train", "en"}, used.size());
  b.MarkImageSweepPending(true);
  ASSERT_THAT(store->Write(&b), IsOk());
  ASSERT_EQ(PackFiles(dir_), 2u);

  EXPECT_EQ(*store->SweepUnreferencedImages(), 4u);
  EXPECT_FALSE(*store->ImageSweepPending());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "packs" / "00000001.pack"));  // compacted away
  EXPECT_TRUE(std::filesystem::exists(dir_ / "packs" / "00000002.pack"));   // mostly live: kept
  EXPECT_EQ(PackFiles(dir_), 2u);  // file 2 and the new one
  for (int i : used) EXPECT_EQ(*store->GetImage(ContentHash(images[i])), images[i]);
  auto v = VerifyStore(*store);
  ASSERT_THAT(v, IsOk());
  EXPECT_TRUE(v->ok()) << v->problems[0];
  EXPECT_EQ(v->images, 4u);
  // Nothing left to do: a second sweep changes nothing.
  EXPECT_EQ(*store->SweepUnreferencedImages(), 0u);
  EXPECT_EQ(PackFiles(dir_), 2u);
}

TEST_F(StoreTest, DamagedPackIsDataLossAndVerifyNamesTheImage) {
  auto store = OpenRw();
  Populate(store.get(), /*packs=*/true);
  ASSERT_THAT(store->Flush(), IsOk());
  const auto pack = dir_ / "packs" / "00000001.pack";
  {
    std::fstream f(pack, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);  // inside the last image's bytes
    f.put('#');
  }
  const Hash128 last = ContentHash("image-two-bytes");
  EXPECT_THAT(store->GetImage(last), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("do not hash")));
  auto v = VerifyStore(*store);
  ASSERT_THAT(v, IsOk());
  EXPECT_THAT(v->problems, ::testing::Contains(HasSubstr("do not hash to their key")));
  std::filesystem::remove(pack);
  EXPECT_THAT(store->GetImage(last), StatusIs(absl::StatusCode::kDataLoss));
  // Bytes kept in the batch are checked the same way.
  StoreWriteBatch b;
  b.PutImage(ContentHash("inline"), {ImageFormat::kJpeg, 1, 1, 6}, "INLINE");
  ASSERT_THAT(store->Write(&b), IsOk());
  EXPECT_THAT(store->GetImage(ContentHash("inline")), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("do not hash")));
}

TEST_F(StoreTest, ProgressWithContentIdentityAndIngestStateRoundTrip) {
  auto store = OpenRw();
  FileProgress p{"fp", 100, 3, true, 2, 2, 1};
  p.size = 100;
  p.mtime_ns = 123456789;
  p.hash_chain = ContentHash("chain");
  p.prefix_hash = ContentHash("prefix");
  p.changed = true;
  StoreWriteBatch b;
  b.PutProgress("src", p);
  b.PutIngestState("rejects_length|/x", "42");
  ASSERT_THAT(store->Write(&b), IsOk());
  EXPECT_EQ(**store->GetProgress("src"), p);
  EXPECT_EQ(**store->GetIngestState("rejects_length|/x"), "42");
  EXPECT_FALSE(store->GetIngestState("other")->has_value());
}

TEST_F(StoreTest, ImageIndexRoundTripsAndGoesWithDeleteImageIndex) {
  auto store = OpenRw();
  Populate(store.get());
  EXPECT_FALSE(store->ImageIndexBasis()->has_value());
  EXPECT_FALSE(store->ReadImageIndex()->has_value());
  auto catalog = store->ReadCatalog();
  ASSERT_THAT(catalog, IsOk());
  auto index = BuildImageIndex([&](const auto& fn) { return store->ForEachInstance(fn); }, catalog->fingerprint);
  ASSERT_THAT(index, IsOk());
  // Two images, numbered by first use; the validation instance uses both.
  EXPECT_EQ(index->images, 2u);
  const ImageRefs& train = index->groups.at({"coco", "train", "en"});
  EXPECT_EQ(train.offsets, (std::vector<uint32_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(train.refs, (std::vector<uint32_t>{0, 1, 0, 1, 0}));
  EXPECT_EQ(index->groups.at({"coco", "validation", "en"}).refs, (std::vector<uint32_t>{0, 1}));
  ASSERT_THAT(store->WriteImageIndex(*index), IsOk());
  EXPECT_EQ(*store->ImageIndexBasis(), catalog->fingerprint);
  auto read = store->ReadImageIndex();
  ASSERT_THAT(read, IsOk());
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ(**read, *index);
  // The index is not part of the catalog (the dataset version stays).
  EXPECT_EQ(store->ReadCatalog()->fingerprint, catalog->fingerprint);

  StoreWriteBatch b;
  b.DeleteImageIndex();
  ASSERT_THAT(store->Write(&b), IsOk());
  EXPECT_FALSE(store->ImageIndexBasis()->has_value());
  EXPECT_FALSE(store->ReadImageIndex()->has_value());
}

TEST_F(StoreTest, ImageIndexNeedsDenseOrdinalsAndRefusesCorruptRecords) {
  auto store = OpenRw();
  Populate(store.get());
  StoreWriteBatch b;
  Instance gap;
  gap.group = {"coco", "train", "en"};
  gap.ordinal = 9;
  b.PutInstance(gap);
  ASSERT_THAT(store->Write(&b), IsOk());
  EXPECT_THAT(BuildImageIndex([&](const auto& fn) { return store->ForEachInstance(fn); }, Hash128{}),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("ordinal 9 where 5 was expected")));

  ImageRefs refs;
  refs.offsets = {0, 1};
  refs.refs = {3};
  ImageRefs out;
  EXPECT_THAT(DecodeImageRefs(EncodeImageRefs(refs), 4, &out), IsOk());
  EXPECT_EQ(out, refs);
  EXPECT_THAT(DecodeImageRefs(EncodeImageRefs(refs), 3, &out),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("image number out of range")));
  std::string cut = EncodeImageRefs(refs);
  cut.pop_back();
  EXPECT_THAT(DecodeImageRefs(cut, 4, &out), StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace m3serve::storage
