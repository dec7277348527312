// File: storage/types.h
//
// Plain domain types of the m3serve store. No RocksDB or protobuf types appear
// here; the gRPC layer converts these to and from its messages.
#ifndef M3SERVE_STORAGE_TYPES_H_
#define M3SERVE_STORAGE_TYPES_H_

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/hash.h"
#include "common/image_probe.h"

namespace m3serve::storage {

// One (task, split, language) group: the unit of the instance index. All
// instances of a group are one contiguous key range, ordinals 0..count-1.
struct GroupKey {
  std::string task;   // HF config name, e.g. "vqa-v2"
  std::string split;  // "train" | "validation" | "test"
  std::string lang;   // ISO 639-1/3 code, e.g. "en", "zh", "fuv"

  std::string ToString() const { return task + "/" + split + "/" + lang; }
  auto operator<=>(const GroupKey&) const = default;
};

enum class CommercialUse : uint8_t { kUnknown = 0, kYes = 1, kNo = 2 };
enum class Modality : uint8_t { kImage = 0, kVideo = 1 };

// "yes" | "no" | "unknown", and back (anything else -> kUnknown, false).
const char* CommercialUseName(CommercialUse c);
bool ParseCommercialUse(const std::string& s, CommercialUse* out);
const char* ModalityName(Modality m);
bool ParseModality(const std::string& s, Modality* out);

// Catalog entry for one task (HF config).
struct TaskInfo {
  std::string name;
  std::string category;        // captioning | classification | vqa | reasoning | generation | ...
  std::string source_dataset;  // e.g. "VQA v2"
  std::string license = "LicenseRef-Unknown";  // SPDX id (see common/license.h)
  CommercialUse commercial_use = CommercialUse::kUnknown;
  bool held_out = false;
  Modality modality = Modality::kImage;
  std::string default_lang = "en";
  std::string license_text;  // the license as the task metadata (the M3IT paper) words it

  bool operator==(const TaskInfo&) const = default;
};

// Where an instance came from: file (relative to its source root), 1-based
// line, and the index of the instance among those the line produced (coco
// yields one instance per caption).
struct SourceRef {
  std::string file;
  uint64_t line = 0;
  uint32_t target = 0;
  bool operator==(const SourceRef&) const = default;
};

// One instruction-tuning instance.
struct Instance {
  GroupKey group;
  uint64_t ordinal = 0;          // dense per group, assigned in ingest order
  std::string instruction;       // empty: the task's pool applies
  std::string inputs;
  std::string outputs;
  std::vector<Hash128> images;   // in order (multi-image and video frames)
  SourceRef source;
  std::string meta_json;         // the row's meta object (minus image data), or ""
  // Values substituted into pool instructions, e.g. {"HYPO", hypothesis} for
  // snli-ve, whose instructions contain "[HYPO]".
  std::vector<std::pair<std::string, std::string>> template_vars;

  // Stable id: "task/split/lang/ordinal".
  std::string Id() const;
  bool operator==(const Instance&) const = default;
};

// Small per-image record kept beside the bytes (no decode needed to read it).
struct ImageMeta {
  ImageFormat format = ImageFormat::kUnknown;
  uint32_t width = 0;
  uint32_t height = 0;
  uint64_t size = 0;  // encoded bytes
  bool operator==(const ImageMeta&) const = default;
};

// Everything the catalog column family holds, read in one pass.
struct Catalog {
  std::map<std::string, TaskInfo> tasks;
  std::map<GroupKey, uint64_t> counts;
  // (task, lang) -> instruction pool.
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> pools;
  uint64_t unique_images = 0;
  // Hash of every catalog record: changes whenever an ingest commits.
  Hash128 fingerprint;

  uint64_t TotalInstances() const;
};

// The image-reference index: which images each instance uses, as dense image
// numbers (0..images-1, one per distinct content hash). Built from the
// instances at the end of an ingest and kept in the store, so serving can ask
// "which instances share an image with these groups" without reading an
// instance record. Valid only for the catalog fingerprint `basis`.
struct ImageRefs {
  // Instance ordinal o uses refs[offsets[o] .. offsets[o+1]).
  std::vector<uint32_t> offsets{0};  // size instances + 1
  std::vector<uint32_t> refs;

  uint64_t instances() const { return offsets.size() - 1; }
  bool operator==(const ImageRefs&) const = default;
};
struct ImageIndex {
  Hash128 basis;        // Catalog::fingerprint of the store it describes
  uint32_t images = 0;  // distinct images
  std::map<GroupKey, ImageRefs> groups;
  bool operator==(const ImageIndex&) const = default;
};

// Ingest progress of one source file, committed atomically with its rows.
// A side file the rows of a source file depend on (an instruction pool, a
// class table, M3IT-80's English rows), as the ingest saw it: its identity
// (a hash of what the ingest takes from it, or of "absent") and its stat, so
// a re-run whose stat matches trusts the identity without reading the file.
struct SideFileState {
  std::string role;  // stable per source file: "pool:en:instructions.json", "labels.json", ...
  Hash128 identity;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  uint64_t device = 0;
  int64_t checked_ns = 0;
  bool operator==(const SideFileState&) const = default;
};

struct FileProgress {
  std::string fingerprint;  // content identity of the whole file, set once complete
  uint64_t offset = 0;      // bytes consumed (start of the next unread line)
  uint64_t line = 0;        // lines consumed
  bool complete = false;
  uint64_t ingested_rows = 0;
  uint64_t instances = 0;
  uint64_t rejected = 0;
  // The file as it was seen when read: a re-run that finds the same size,
  // modification time and inode trusts its content without reading it (unless
  // the modification was within kRacyNs of the check, or sources are verified).
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  uint64_t device = 0;
  int64_t checked_ns = 0;  // wall-clock time of that look
  // Content hash state of bytes [0, hash_offset) (a hash block boundary), so a
  // resumed run re-reads less than one block to continue the hash.
  Hash128 hash_chain;
  uint64_t hash_offset = 0;
  // Content hash of bytes [0, offset): a resumed run whose quick check fails
  // re-hashes that much and compares.
  Hash128 prefix_hash;
  // The file changed while it was read: its rows are stale, and the next run
  // ingests its group again.
  bool changed = false;
  // The side files its rows were made with; side_known is false in records
  // written before side files were recorded (nothing to compare with).
  bool side_known = false;
  std::vector<SideFileState> side_files;
  bool operator==(const FileProgress&) const = default;
};

}  // namespace m3serve::storage

#endif  // M3SERVE_STORAGE_TYPES_H_
