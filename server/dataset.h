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
#include "server/eval_guard.h"
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
  // The evaluation-leakage guard (server/eval_guard.h): leave out every
  // instance that shares an image with the evaluation set, the instances of
  // `eval_splits` (empty: validation and test) of `eval_tasks` (empty: every
  // task of the store).
  bool exclude_eval_images = false;
  std::vector<std::string> eval_splits;
  std::vector<std::string> eval_tasks;
};

// The groups a selection matches, in key order, with prefix sums: position p
// of the selection (0 <= p < total) is the (p - prefix[g])-th instance group g
// keeps: that ordinal itself, or, under the evaluation guard, the ordinal of
// that kept instance (exclusions[g]).
struct ResolvedSelection {
  std::vector<storage::GroupKey> groups;
  std::vector<uint64_t> prefix{0};  // size groups + 1: kept instances
  // Per group, the ordinals the guard leaves out; nullptr: none.
  std::vector<std::shared_ptr<const GroupExclusion>> exclusions;
  std::vector<std::string> removed_by_policy;
  // Under the guard: its evaluation set (EvalSet::Describe), and the
  // instances it left out of each matched group that lost any (groups left
  // with none are not in `groups`).
  std::string guard;
  std::vector<std::pair<storage::GroupKey, uint64_t>> guard_losses;
  Hash128 digest;  // of the guard, the resolved groups and their sizes

  uint64_t total() const { return prefix.back(); }
  // Append group `g` of `n` instances, of which `exclusion` (may be null)
  // leaves some out (prefix sums follow).
  void Add(const storage::GroupKey& g, uint64_t n, std::shared_ptr<const GroupExclusion> exclusion = nullptr) {
    groups.push_back(g);
    prefix.push_back(prefix.back() + n - (exclusion ? exclusion->excluded() : 0));
    exclusions.push_back(std::move(exclusion));
  }
  // Append group `i` of `other`, as it is there.
  void AddFrom(const ResolvedSelection& other, size_t i);
  // Compute `digest` from the groups and their sizes (call after the last Add).
  void Seal();
  // (group index, ordinal) of position p; requires p < total().
  std::pair<size_t, uint64_t> Locate(uint64_t p) const;
  // Why (group, ordinal) is not in the selection ("" when it is).
  std::string WhyNot(const storage::GroupKey& group, uint64_t ordinal) const;
};

class Dataset {
 public:
  // Open the store read-only and read its catalog. Errors as Store::Open.
  static absl::StatusOr<std::unique_ptr<Dataset>> Open(const storage::StoreOptions& store_options,
                                                       LicensePolicy policy);
  // Over a store already open (read-only).
  static absl::StatusOr<std::unique_ptr<Dataset>> Open(std::unique_ptr<storage::Store> store, LicensePolicy policy);
  // Every file the store reads is still there (storage::Store::CheckFiles);
  // OK for a dataset without a store.
  absl::Status CheckStoreFiles() const { return store_ ? store_->CheckFiles() : absl::OkStatus(); }
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

  // The guard's exclusion for the evaluation set of `spec` (eval_splits,
  // eval_tasks; the field names in errors are `field_prefix` + name):
  //   InvalidArgument: an unknown split or task (the known ones listed), or
  //                    eval_splits / eval_tasks without exclude_eval_images;
  //   FailedPrecondition: the store has no image index of its data.
  // Computed once per evaluation set (the default one when the dataset opens)
  // and kept. nullptr when the spec does not ask for the guard.
  absl::StatusOr<std::shared_ptr<const EvalExclusion>> EvalGuard(const SelectionSpec& spec,
                                                                 const std::string& field_prefix) const;
  // Use `index` for the guard (tests; Open reads the store's).
  void SetImageIndex(std::shared_ptr<const storage::ImageIndex> index);
  const storage::ImageIndex* image_index() const { return image_index_.get(); }

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
  std::shared_ptr<const storage::ImageIndex> image_index_;
  std::string no_index_why_;  // why there is none (for the guard's error)
  mutable absl::Mutex guard_mu_;
  // Per evaluation set: its exclusion and when it was last asked for (the
  // least recently used goes when the cache is full).
  struct KeptGuard {
    std::shared_ptr<const EvalExclusion> exclusion;
    uint64_t last_use = 0;
  };
  mutable std::map<std::string, KeptGuard> guards_ ABSL_GUARDED_BY(guard_mu_);
  mutable uint64_t guard_uses_ ABSL_GUARDED_BY(guard_mu_) = 0;
  mutable absl::Mutex census_mu_;
  mutable std::optional<absl::StatusOr<ImageCensus>> census_ ABSL_GUARDED_BY(census_mu_);
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_DATASET_H_
