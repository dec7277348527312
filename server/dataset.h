// File: server/dataset.h
//
// The server's read-only view of a store: the catalog held in memory, the
// license policy, and the resolution of a selection into ordered groups. No
// gRPC here; the service converts requests into these types.
#ifndef M3SERVE_SERVER_DATASET_H_
#define M3SERVE_SERVER_DATASET_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/hash.h"
#include "absl/synchronization/mutex.h"
#include "server/image_census.h"
#include "server/instance_reader.h"
#include "server/policy.h"
#include "storage/store.h"
#include "storage/types.h"

namespace m3serve::server {

// A request's selection; an empty list means no constraint on that field.
struct SelectionSpec {
  std::vector<std::string> tasks;
  std::vector<std::string> categories;
  std::vector<std::string> splits;
  std::vector<std::string> languages;
  std::vector<std::string> licenses;
  bool commercial_use_only = false;
  std::vector<std::string> exclude_tasks;
  std::optional<storage::Modality> modality;
  // The tasks the M3IT paper holds out for evaluation: selected like any
  // other (kAny), left out (kExclude), or the only ones (kOnly).
  enum class HeldOut { kAny, kExclude, kOnly } held_out = HeldOut::kAny;
};

// The groups a selection matches, in key order, with prefix sums: position p
// of the selection (0 <= p < total) is ordinal p - prefix[g] of group g.
struct ResolvedSelection {
  std::vector<storage::GroupKey> groups;
  std::vector<uint64_t> prefix{0};  // size groups + 1
  std::vector<std::string> removed_by_policy;
  Hash128 digest;  // of the resolved groups and their sizes

  uint64_t total() const { return prefix.back(); }
  // Append group `g` of `n` instances (prefix sums follow).
  void Add(const storage::GroupKey& g, uint64_t n) {
    groups.push_back(g);
    prefix.push_back(prefix.back() + n);
  }
  // Compute `digest` from the groups and their sizes (call after the last Add).
  void Seal();
  // (group index, ordinal) of position p; requires p < total().
  std::pair<size_t, uint64_t> Locate(uint64_t p) const;
};

class Dataset {
 public:
  // Open the store read-only and read its catalog. Errors as Store::Open.
  static absl::StatusOr<std::unique_ptr<Dataset>> Open(const storage::StoreOptions& store_options,
                                                       LicensePolicy policy);
  // A dataset over a catalog and, optionally, an in-memory reader (tests, fuzz
  // targets): resolves selections and answers catalog queries; reader() must
  // not be called when none is given.
  static std::unique_ptr<Dataset> FromCatalog(storage::Catalog catalog, LicensePolicy policy,
                                              std::unique_ptr<InstanceReader> reader = nullptr);

  // Resolve a selection against the catalog and the policy.
  //   NotFound: a task, category, split, language, license or excluded task
  //             the store does not have (the message names the field).
  //   PermissionDenied: a task or license the policy excludes, asked for by name.
  // `entitlement`, when given, narrows the policy further for one caller
  // (an authenticated identity named `who` in messages).
  absl::StatusOr<ResolvedSelection> Resolve(const SelectionSpec& spec,
                                            const LicensePolicy* entitlement = nullptr,
                                            const std::string& who = "") const;
  // True when the server policy and `entitlement` (may be null) admit `task`.
  bool Admits(const storage::TaskInfo& task, const LicensePolicy* entitlement) const {
    return policy_.Admits(task) && (entitlement == nullptr || entitlement->Admits(task));
  }
  // The one check for a task asked for by name (in request field `field`):
  // PermissionDenied when the policy or the entitlement of identity `who`
  // excludes it; OK for tasks the store does not have (callers report those).
  absl::Status CheckTaskAllowed(const std::string& task, const LicensePolicy* entitlement,
                                const std::string& who, const std::string& field) const;

  const storage::Catalog& catalog() const { return catalog_; }
  const LicensePolicy& policy() const { return policy_; }
  // The store's content fingerprint (hex); resume tokens are tied to it.
  const std::string& version() const { return version_; }
  // Where instances and images are read from (the store, or a test's reader).
  const InstanceReader& reader() const { return *reader_; }
  // Task metadata, or nullptr.
  const storage::TaskInfo* Task(const std::string& name) const;
  // The instruction pool of (task, lang), else of the task's default
  // language; nullptr when there is none.
  const std::vector<std::string>* Pool(const std::string& task, const std::string& lang) const;
  // Distinct images used by the tasks `entitlement` (may be null) sees on top
  // of the policy: the store's count when every task is admitted, else from
  // the image census (BuildImageCensus; built here on first need). Errors as
  // the reader's scan; FailedPrecondition for a dataset without a reader.
  absl::StatusOr<uint64_t> UniqueImages(const LicensePolicy* entitlement) const;
  // Scan the instances once for the image census (thread-safe, once). The
  // server calls it at start when its policy or a token narrows the catalog.
  absl::Status BuildImageCensus() const;
  // True when the policy and `entitlement` (may be null) admit every task.
  bool AdmitsAll(const LicensePolicy* entitlement) const;
  // Tasks of the store that the policy removes.
  const std::vector<std::string>& removed_tasks() const { return removed_tasks_; }
  // Instances per task after the policy.
  uint64_t TaskInstances(const std::string& task) const;

 private:
  Dataset() = default;
  void Init(storage::Catalog catalog, LicensePolicy policy);
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<InstanceReader> reader_;
  storage::Catalog catalog_;
  LicensePolicy policy_;
  std::string version_;
  std::vector<std::string> removed_tasks_;
  std::map<std::string, uint64_t> task_instances_;
  mutable absl::Mutex census_mu_;
  mutable std::optional<absl::StatusOr<ImageCensus>> census_ ABSL_GUARDED_BY(census_mu_);
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_DATASET_H_
