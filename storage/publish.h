// File: storage/publish.h
//
// Versioned stores: a publish root holds every published version of the data
// and a pointer to the current one, so a publish never changes or deletes the
// store a running server reads.
//
//   ROOT/CURRENT_VERSION     "<version>\n": the version new servers open
//                            (replaced atomically: written beside, renamed)
//   ROOT/versions/<version>  a store (a checkpoint) whose dataset version
//                            (catalog fingerprint, hex) is <version>
//   ROOT/leases/<holder>     "<version>\n": a running server holds that
//                            version; it refreshes the file's time while it
//                            runs and removes it when it stops
//
// A version is removed only when it is not the current one, not among the
// `keep` newest others, and no live lease (refreshed within the lease time)
// holds it. Bad input is refused before anything is written or deleted.
#ifndef M3SERVE_STORAGE_PUBLISH_H_
#define M3SERVE_STORAGE_PUBLISH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/store.h"

namespace m3serve::storage {

inline constexpr char kPointerFile[] = "CURRENT_VERSION";
inline constexpr char kVersionsDir[] = "versions";
inline constexpr char kLeasesDir[] = "leases";

// True when `path` is a publish root (has the pointer or a versions folder).
bool IsPublishRoot(const std::string& path);

// What a server should open for `path`: a publish root resolves through its
// pointer; any other path is a store itself (version left empty).
struct ResolvedStore {
  std::string store;    // the store directory
  std::string version;  // the pointer's version ("" for a plain store)
  std::string root;     // the publish root ("" for a plain store)
};
// NotFound: a publish root without a pointer yet (nothing published), or a
// pointer to a version that is not there. InvalidArgument: a malformed pointer.
absl::StatusOr<ResolvedStore> ResolveStore(const std::string& path);

// The dataset version of an open store (its catalog fingerprint, hex).
absl::StatusOr<std::string> StoreVersion(const Store& store);

// Open `resolved` read-only and check that the store's version is the one
// the pointer names (FailedPrecondition otherwise). Errors as Store::Open.
absl::StatusOr<std::unique_ptr<Store>> OpenResolved(const ResolvedStore& resolved, const StoreOptions& options);

struct PublishOptions {
  // Versions kept besides the current one and the leased ones (newest first).
  int keep = 1;
  // A lease whose file was not refreshed for this long is dead.
  absl::Duration lease_ttl = absl::Seconds(60);
};

struct PublishReport {
  std::string version;                // now current
  std::string previous;               // current before ("" if none)
  bool written = false;               // false: that version was already there
  std::vector<std::string> removed;   // versions deleted by the clean-up
  std::vector<std::string> kept;      // other versions kept, with why ("v (leased by h)")
};

// Write `store` into `root` as a new version (a checkpoint, made beside and
// renamed into place) unless that version is already there, switch the
// pointer to it, then clean up. Creates `root` when missing.
//   FailedPrecondition: `root` is a store itself, or holds files that are not
//     a publish root's; versions/<v> holds a store of another version.
// Nothing is deleted when it fails.
absl::StatusOr<PublishReport> Publish(const Store& store, const std::string& root, const PublishOptions& options);

// Remove the versions no one needs (see above), and leftovers of publishes
// that were killed half-way. The report's `version` is the current one.
// FailedPrecondition, removing nothing, when there is no pointer or it names
// a version that is not there.
absl::StatusOr<PublishReport> CleanUp(const std::string& root, const PublishOptions& options);

// A server's record that it holds a version (ROOT/leases/<holder>).
class Lease {
 public:
  // Write the lease of `holder` (letters, digits, '-', '_', '.') for `version`.
  // Unavailable when the leases folder cannot be written (a read-only mount).
  static absl::StatusOr<Lease> Acquire(const std::string& root, const std::string& holder,
                                       const std::string& version);
  Lease(Lease&&) noexcept;
  Lease& operator=(Lease&&) noexcept;
  ~Lease();  // removes the file

  // Mark the lease alive now (its file's time; written again if a clean-up
  // removed it as dead meanwhile). Unavailable on failure.
  absl::Status Refresh();
  const std::string& path() const { return path_; }

 private:
  Lease() = default;
  std::string path_;
  std::string version_;
};

// A holder name for this process: "<hostname>-<pid>".
std::string DefaultLeaseHolder();

}  // namespace m3serve::storage

#endif  // M3SERVE_STORAGE_PUBLISH_H_
