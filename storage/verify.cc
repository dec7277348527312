#include "storage/verify.h"

#include <map>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "storage/image_index.h"
#include "storage/key_codec.h"
#include "storage/record_codec.h"

namespace m3serve::storage {

absl::StatusOr<VerifyReport> VerifyStore(const Store& store, size_t max_problems) {
  VerifyReport r;
  auto problem = [&](std::string p) {
    ++r.problem_count;
    if (r.problems.size() < max_problems) r.problems.push_back(std::move(p));
  };
  M3SERVE_ASSIGN_OR_RETURN(Catalog catalog, store.ReadCatalog());

  // Image metadata first, so instance references can be checked in memory.
  absl::flat_hash_set<Hash128> known;
  std::map<Hash128, ImageMeta> metas;
  M3SERVE_RETURN_IF_ERROR(store.ForEachImageMeta([&](const Hash128& h, const ImageMeta& m) {
    known.insert(h);
    metas.emplace(h, m);
    return true;
  }));

  StreamingHash digest;
  absl::flat_hash_set<Hash128> referenced;
  std::map<GroupKey, uint64_t> counted;
  GroupKey current;
  uint64_t expected_ordinal = 0;
  bool first = true;
  M3SERVE_RETURN_IF_ERROR(store.ForEachInstance([&](Instance&& x) {
    if (first || x.group != current) {
      current = x.group;
      expected_ordinal = 0;
      first = false;
    }
    if (x.ordinal != expected_ordinal) {
      problem(absl::StrCat("group ", x.group.ToString(), ": ordinal ", x.ordinal, " where ",
                           expected_ordinal, " was expected (gap in the index)"));
    }
    expected_ordinal = x.ordinal + 1;
    ++counted[x.group];
    ++r.instances;
    if (x.images.empty()) problem(absl::StrCat("instance ", x.Id(), " has no image"));
    for (const auto& h : x.images) {
      ++r.image_refs;
      referenced.insert(h);
      if (!known.contains(h)) {
        problem(absl::StrCat("instance ", x.Id(), " references missing image ", h.Hex()));
      }
    }
    if (!catalog.tasks.contains(x.group.task)) {
      problem(absl::StrCat("instance ", x.Id(), ": task '", x.group.task, "' is not in the catalog"));
    }
    digest.AddRecord(InstanceKey(x.group, x.ordinal));
    digest.AddRecord(EncodeInstance(x));
    return true;
  }));
  r.groups = counted.size();

  for (const auto& [g, n] : counted) {
    auto it = catalog.counts.find(g);
    uint64_t want = it == catalog.counts.end() ? 0 : it->second;
    if (want != n) {
      problem(absl::StrCat("group ", g.ToString(), ": catalog count ", want, ", index holds ", n));
    }
  }
  for (const auto& [g, n] : catalog.counts) {
    if (n != 0 && !counted.contains(g)) {
      problem(absl::StrCat("group ", g.ToString(), ": catalog count ", n, ", index holds 0"));
    }
  }

  uint64_t with_bytes = 0;
  M3SERVE_RETURN_IF_ERROR(store.ForEachImage([&](const Hash128& h, absl::string_view bytes) {
    ++with_bytes;
    r.image_bytes += bytes.size();
    if (ContentHash(bytes) != h) {
      problem(absl::StrCat("image ", h.Hex(), ": bytes do not hash to their key (corrupt)"));
    }
    auto it = metas.find(h);
    if (it == metas.end()) {
      problem(absl::StrCat("image ", h.Hex(), ": bytes without a metadata record"));
    } else if (it->second.size != bytes.size()) {
      problem(absl::StrCat("image ", h.Hex(), ": metadata says ", it->second.size,
                           " bytes, store holds ", bytes.size()));
    }
    if (!referenced.contains(h)) {
      problem(absl::StrCat("image ", h.Hex(), " is not referenced by any instance (orphan)"));
    }
    digest.AddRecord(h.Raw());
    return true;
  }));
  r.images = metas.size();
  if (with_bytes != metas.size()) {
    problem(absl::StrCat(metas.size(), " image metadata records but ", with_bytes, " images with bytes"));
  }
  if (catalog.unique_images != metas.size()) {
    problem(absl::StrCat("catalog says ", catalog.unique_images, " unique images, store holds ",
                         metas.size()));
  }
  // Rows of a source that changed while it was read are stale until the next
  // ingest re-reads its group.
  M3SERVE_RETURN_IF_ERROR(store.ForEachProgress([&](absl::string_view key, const FileProgress& p) {
    if (p.changed) {
      problem(absl::StrCat("source ", key, " changed while it was ingested: its rows are stale; run "
                           "the ingest again to re-read its group"));
    }
    return true;
  }));
  absl::StatusOr<std::optional<ImageIndex>> index = store.ReadImageIndex();
  if (!index.ok() && !absl::IsDataLoss(index.status())) return index.status();
  if (!index.ok()) {
    r.image_index = VerifyReport::ImageIndexState::kStale;
    problem(absl::StrCat("the image index is corrupt (", index.status().message(), "): run the ingest again"));
  } else if (*index) {
    r.image_index = VerifyReport::ImageIndexState::kCurrent;
    if ((*index)->basis != catalog.fingerprint) {
      r.image_index = VerifyReport::ImageIndexState::kStale;
      problem("the image index describes other data (an ingest stopped before it was rebuilt): run the ingest "
              "again");
    } else {
      absl::StatusOr<ImageIndex> fresh =
          BuildImageIndex([&](const auto& fn) { return store.ForEachInstance(fn); }, catalog.fingerprint);
      if (fresh.ok() && !(*fresh == **index)) {
        r.image_index = VerifyReport::ImageIndexState::kStale;
        problem("the image index differs from the images the instances use: run the ingest again");
      }
    }
  }
  digest.AddRecord(catalog.fingerprint.Raw());
  r.digest = digest.Finish();
  return r;
}

}  // namespace m3serve::storage
