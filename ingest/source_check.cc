#include "ingest/source_check.h"

#include <unistd.h>

#include <chrono>

#include "absl/strings/str_cat.h"

namespace m3serve::ingest {
bool StatTrusted(const SourceStat& now, uint64_t size, int64_t mtime_ns, uint64_t inode,
                 uint64_t device, int64_t checked_ns) {
  const bool same = now.size == size && now.mtime_ns == mtime_ns && now.inode == inode &&
                    now.device == device;
  return same && checked_ns > 0 && mtime_ns + kRacyNs < checked_ns;
}

namespace {

bool QuickCheckPasses(const SourceStat& now, const storage::FileProgress& p) {
  return StatTrusted(now, p.size, p.mtime_ns, p.inode, p.device, p.checked_ns);
}

}  // namespace

void RecordStat(const SourceStat& stat, int64_t checked_ns, storage::FileProgress* p) {
  p->size = stat.size;
  p->mtime_ns = stat.mtime_ns;
  p->inode = stat.inode;
  p->device = stat.device;
  p->checked_ns = checked_ns;
}

int64_t WallClockNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<SourceDecision> DecideSource(const std::string& path,
                                            const std::optional<storage::FileProgress>& stored,
                                            bool verify, int64_t now_ns) {
  SourceDecision d;
  absl::StatusOr<SourceStat> now = StatRegularFile(path);
  if (!now.ok()) return now.status();
  if (!stored.has_value()) return d;
  const storage::FileProgress& p = *stored;
  if (p.changed) {
    d.action = SourceDecision::kRestartGroup;
    d.why = "it changed while an earlier run read it";
    return d;
  }
  const bool trusted = QuickCheckPasses(*now, p);
  if (p.complete) {
    if (trusted && !verify) {
      d.action = SourceDecision::kSkip;
      return d;
    }
    absl::StatusOr<HashedFile> hashed = HashWholeFile(path);
    if (!hashed.ok()) return hashed.status();
    if (hashed->fingerprint == p.fingerprint) {
      d.action = SourceDecision::kSkip;
      if (!trusted) {
        d.refresh = true;
        d.progress = p;
        RecordStat(hashed->stat, now_ns, &d.progress);
      }
      return d;
    }
    d.action = SourceDecision::kRestartGroup;
    d.why = absl::StrCat("its content changed since it was ingested (", p.fingerprint, " -> ",
                         hashed->fingerprint, ")");
    return d;
  }
  // Partly ingested.
  d.action = SourceDecision::kResume;
  d.progress = p;
  if (trusted) return d;
  SourceStat opened;
  absl::StatusOr<int> fd = OpenRegularFile(path, &opened);
  if (!fd.ok()) return fd.status();
  ChainedContentHash hash;
  absl::StatusOr<uint64_t> fed = HashFileRange(*fd, path, 0, p.offset, &hash);
  ::close(*fd);
  if (!fed.ok()) return fed.status();
  if (*fed != p.offset) {
    d.action = SourceDecision::kRestartGroup;
    d.why = absl::StrCat("it is now shorter (", *fed, " bytes) than where its ingest stopped (",
                         p.offset, ")");
  } else if (hash.Digest() != p.prefix_hash) {
    d.action = SourceDecision::kRestartGroup;
    d.why = absl::StrCat("the ", p.offset, " bytes ingested before the interruption changed");
  }
  return d;
}

}  // namespace m3serve::ingest
