// File: ingest/source_check.h
//
// What a run does with a source file the store may already know: start it,
// resume it, skip it, or ingest its group again because the file changed.
// A file's identity is its content hash; a quick check (size, modification
// time, inode, device) decides whether it must be read again to know.
#ifndef M3SERVE_INGEST_SOURCE_CHECK_H_
#define M3SERVE_INGEST_SOURCE_CHECK_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "ingest/source_file.h"
#include "storage/types.h"

namespace m3serve::ingest {

// A file modified less than this before its stat was recorded is "racily
// clean": the same size and modification time may hide a second write within
// the file system's timestamp granularity, so its content is re-hashed.
inline constexpr int64_t kRacyNs = 2'000'000'000;

struct SourceDecision {
  enum Action {
    kStart,         // never ingested: read from the start
    kResume,        // partly ingested, unchanged: continue at progress.offset
    kSkip,          // complete and unchanged
    kRestartGroup,  // changed since (or while) it was ingested: its group is ingested again
  };
  Action action = kStart;
  // kResume: where to continue. kSkip with refresh: the record to write back
  // (the content was re-hashed and matched; the stat is new).
  storage::FileProgress progress;
  bool refresh = false;
  // kRestartGroup: how the file changed.
  std::string why;
};

// Decide for the file at `path` given its stored progress. `verify` re-hashes
// complete files even when the quick check passes (--verify-sources).
// `now_ns`: wall-clock time, recorded with a refreshed stat. Errors: the file
// cannot be read or is not a regular file (the message names it).
absl::StatusOr<SourceDecision> DecideSource(const std::string& path,
                                            const std::optional<storage::FileProgress>& stored,
                                            bool verify, int64_t now_ns);

// The quick check, for source and side files alike: `now` has the recorded
// size, modification time, inode and device, and the record was taken more
// than kRacyNs after that modification (else the content must be read).
bool StatTrusted(const SourceStat& now, uint64_t size, int64_t mtime_ns, uint64_t inode,
                 uint64_t device, int64_t checked_ns);

// Record `stat`, seen at `checked_ns`, in `progress`.
void RecordStat(const SourceStat& stat, int64_t checked_ns, storage::FileProgress* progress);

// Wall-clock nanoseconds since the epoch.
int64_t WallClockNs();

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_SOURCE_CHECK_H_
