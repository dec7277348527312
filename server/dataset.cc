#include "server/dataset.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/license.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace m3serve::server {
namespace {

std::set<std::string> ToSet(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

std::string Known(const std::set<std::string>& names) {
  std::string s = absl::StrJoin(names.begin(), names.end(), ", ");
  if (s.size() > 300) s = s.substr(0, 300) + ", ...";
  return s;
}

}  // namespace

std::pair<size_t, uint64_t> ResolvedSelection::Locate(uint64_t p) const {
  // prefix is non-decreasing; find the last group whose start <= p and that is non-empty.
  auto it = std::upper_bound(prefix.begin(), prefix.end(), p);
  size_t g = static_cast<size_t>(it - prefix.begin()) - 1;
  const uint64_t i = p - prefix[g];
  return {g, exclusions[g] ? exclusions[g]->KeptOrdinal(i) : i};
}

void ResolvedSelection::AddFrom(const ResolvedSelection& other, size_t i) {
  groups.push_back(other.groups[i]);
  prefix.push_back(prefix.back() + other.prefix[i + 1] - other.prefix[i]);
  exclusions.push_back(other.exclusions[i]);
  guard = other.guard;
}

std::string ResolvedSelection::WhyNot(const storage::GroupKey& group, uint64_t ordinal) const {
  auto it = std::lower_bound(groups.begin(), groups.end(), group);
  const bool listed = it != groups.end() && *it == group;
  const GroupExclusion* ex = listed ? exclusions[static_cast<size_t>(it - groups.begin())].get() : nullptr;
  const bool lost = std::any_of(guard_losses.begin(), guard_losses.end(),
                                [&](const auto& l) { return l.first == group; });
  if ((listed && ex != nullptr && ex->Excludes(ordinal)) || (!listed && lost)) {
    return absl::StrCat("it shares an image with the evaluation set (", guard,
                        ") and the selection has exclude_eval_images");
  }
  if (!listed) return absl::StrCat("group ", group.ToString(), " is not in the selection");
  return "";
}

void ResolvedSelection::Seal() {
  // The digest covers what positions depend on: the guard, the ordered groups
  // and their sizes. Two requests that resolve to the same groups share order
  // and tokens.
  StreamingHash h;
  if (!guard.empty()) h.AddRecord(absl::StrCat("guard:", guard));
  for (size_t i = 0; i < groups.size(); ++i) {
    h.AddRecord(groups[i].ToString());
    h.AddRecord(absl::StrCat(prefix[i + 1] - prefix[i]));
  }
  digest = h.Finish();
}

absl::StatusOr<std::unique_ptr<Dataset>> Dataset::Open(const storage::StoreOptions& store_options,
                                                       LicensePolicy policy) {
  M3SERVE_ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> store, storage::Store::Open(store_options));
  return Open(std::move(store), std::move(policy));
}

absl::StatusOr<std::unique_ptr<Dataset>> Dataset::Open(std::unique_ptr<storage::Store> store, LicensePolicy policy) {
  std::unique_ptr<Dataset> d(new Dataset());
  d->store_ = std::move(store);
  M3SERVE_ASSIGN_OR_RETURN(storage::Catalog catalog, d->store_->ReadCatalog());
  d->reader_ = std::make_unique<StoreReader>(d->store_.get());
  const Hash128 fingerprint = catalog.fingerprint;
  d->Init(std::move(catalog), std::move(policy));
  M3SERVE_ASSIGN_OR_RETURN(std::optional<Hash128> basis, d->store_->ImageIndexBasis());
  if (!basis) {
    d->no_index_why_ = "the store has no image index (it was ingested by an older m3serve, or its last ingest "
                       "stopped before the end)";
  } else if (*basis != fingerprint) {
    d->no_index_why_ = "the store's image index describes other data (an ingest stopped before it was rebuilt)";
  } else {
    absl::StatusOr<std::optional<storage::ImageIndex>> index = d->store_->ReadImageIndex();
    if (!index.ok() && !absl::IsDataLoss(index.status())) return index.status();
    if (!index.ok()) {
      // The data itself is served; only the guard and attribution need the index.
      d->no_index_why_ = absl::StrCat("the store's image index is corrupt (", index.status().message(), ")");
      M3_LOG(WARNING) << "serving without the image index: " << d->no_index_why_;
    } else if (*index) {
      d->SetImageIndex(std::make_shared<const storage::ImageIndex>(**std::move(index)));
    }
  }
  return d;
}

void Dataset::SetImageIndex(std::shared_ptr<const storage::ImageIndex> index) {
  image_index_ = std::move(index);
  {
    absl::MutexLock lock(&guard_mu_);
    guards_.clear();
  }
  // The default evaluation set is ready before the first request asks.
  SelectionSpec spec;
  spec.exclude_eval_images = true;
  (void)EvalGuard(spec, "");
}

absl::StatusOr<std::shared_ptr<const EvalExclusion>> Dataset::EvalGuard(const SelectionSpec& spec,
                                                                        const std::string& field_prefix) const {
  if (!spec.exclude_eval_images) {
    if (!spec.eval_splits.empty() || !spec.eval_tasks.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          field_prefix, spec.eval_splits.empty() ? "eval_tasks" : "eval_splits",
          " is given without ", field_prefix, "exclude_eval_images (the evaluation set only matters to the guard)"));
    }
    return std::shared_ptr<const EvalExclusion>();
  }
  EvalSet set;
  std::set<std::string> known_splits, known_tasks;
  for (const auto& [g, n] : catalog_.counts) known_splits.insert(g.split);
  for (const auto& [name, t] : catalog_.tasks) known_tasks.insert(name);
  auto check = [&](const std::vector<std::string>& asked, const std::set<std::string>& known, const char* field,
                   const char* what, std::vector<std::string>* out) -> absl::Status {
    std::set<std::string> names;
    for (const auto& a : asked) {
      if (!known.count(a)) {
        return absl::InvalidArgumentError(absl::StrCat(field_prefix, field, ": unknown ", what, " '", a,
                                                       "' (known: ", Known(known), ")"));
      }
      names.insert(a);
    }
    out->assign(names.begin(), names.end());
    return absl::OkStatus();
  };
  M3SERVE_RETURN_IF_ERROR(check(spec.eval_splits, known_splits, "eval_splits", "split", &set.splits));
  M3SERVE_RETURN_IF_ERROR(check(spec.eval_tasks, known_tasks, "eval_tasks", "task", &set.tasks));
  if (set.splits.empty()) set.splits = DefaultEvalSplits();
  if (image_index_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        field_prefix, "exclude_eval_images: ",
        no_index_why_.empty() ? std::string("the dataset has no image index") : no_index_why_,
        "; run `m3serve-admin ingest` on the store again (with its sources) to build it"));
  }
  const std::string key = set.Describe();
  {
    absl::MutexLock lock(&guard_mu_);
    auto it = guards_.find(key);
    if (it != guards_.end()) {
      it->second.last_use = ++guard_uses_;
      return it->second.exclusion;
    }
  }
  std::shared_ptr<const EvalExclusion> ex = ComputeEvalExclusion(*image_index_, std::move(set));
  absl::MutexLock lock(&guard_mu_);
  // A few evaluation sets are in use at a time; the cache stays small.
  constexpr size_t kMaxKept = 16;
  if (auto it = guards_.find(key); it != guards_.end()) return it->second.exclusion;  // computed meanwhile
  if (guards_.size() >= kMaxKept) {
    guards_.erase(std::min_element(guards_.begin(), guards_.end(), [](const auto& a, const auto& b) {
      return a.second.last_use < b.second.last_use;
    }));
  }
  return guards_.emplace(key, KeptGuard{std::move(ex), ++guard_uses_}).first->second.exclusion;
}

std::unique_ptr<Dataset> Dataset::FromCatalog(storage::Catalog catalog, LicensePolicy policy,
                                              std::unique_ptr<InstanceReader> reader) {
  std::unique_ptr<Dataset> d(new Dataset());
  d->reader_ = std::move(reader);
  d->Init(std::move(catalog), std::move(policy));
  return d;
}

bool Dataset::AdmitsAll(const LicensePolicy* entitlement) const {
  return std::all_of(catalog_.tasks.begin(), catalog_.tasks.end(),
                     [&](const auto& t) { return Admits(t.second, entitlement); });
}

absl::Status Dataset::BuildImageCensus() const {
  absl::MutexLock lock(&census_mu_);
  if (!census_) {
    if (reader_ == nullptr) return absl::FailedPreconditionError("image census: the dataset has no reader");
    census_.emplace(ImageCensus::Build(*reader_));
  }
  const absl::Status& s = census_->status();
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat("image census (the catalog's unique_images through a policy or "
                                             "token): scanning the instances failed: ", s.message()));
}

absl::StatusOr<uint64_t> Dataset::UniqueImages(const LicensePolicy* entitlement) const {
  if (AdmitsAll(entitlement)) return catalog_.unique_images;
  M3SERVE_RETURN_IF_ERROR(BuildImageCensus());
  absl::MutexLock lock(&census_mu_);
  return (*census_)->Count([&](const std::string& name) {
    const storage::TaskInfo* t = Task(name);
    return t != nullptr && Admits(*t, entitlement);
  });
}

void Dataset::Init(storage::Catalog catalog, LicensePolicy policy) {
  catalog_ = std::move(catalog);
  // Stores ingested before licenses were SPDX ids hold the metadata's wording.
  for (auto& [name, task] : catalog_.tasks) {
    if (std::optional<std::string> id = CanonicalLicense(task.license); id && *id != task.license) {
      if (task.license_text.empty()) task.license_text = task.license;
      task.license = *id;
    }
  }
  policy_ = std::move(policy);
  version_ = catalog_.fingerprint.Hex();
  for (const auto& [name, task] : catalog_.tasks) {
    if (!policy_.Admits(task)) removed_tasks_.push_back(name);
  }
  for (const auto& [g, n] : catalog_.counts) {
    const storage::TaskInfo* t = Task(g.task);
    if (t != nullptr && policy_.Admits(*t)) task_instances_[g.task] += n;
  }
}

const storage::TaskInfo* Dataset::Task(const std::string& name) const {
  auto it = catalog_.tasks.find(name);
  return it == catalog_.tasks.end() ? nullptr : &it->second;
}

uint64_t Dataset::TaskInstances(const std::string& task) const {
  auto it = task_instances_.find(task);
  return it == task_instances_.end() ? 0 : it->second;
}

const std::vector<std::string>* Dataset::Pool(const std::string& task, const std::string& lang) const {
  auto it = catalog_.pools.find({task, lang});
  if (it != catalog_.pools.end() && !it->second.empty()) return &it->second;
  const storage::TaskInfo* t = Task(task);
  if (t != nullptr && t->default_lang != lang) {
    it = catalog_.pools.find({task, t->default_lang});
    if (it != catalog_.pools.end() && !it->second.empty()) return &it->second;
  }
  return nullptr;
}

absl::Status Dataset::CheckTaskAllowed(const std::string& task, const LicensePolicy* entitlement,
                                       const std::string& who, const std::string& field) const {
  const storage::TaskInfo* t = Task(task);
  if (t == nullptr) return absl::OkStatus();
  if (!policy_.Admits(*t)) {
    return absl::PermissionDeniedError(
        absl::StrCat(field, ": task '", task, "' is excluded by the server's license policy"));
  }
  if (entitlement != nullptr && !entitlement->Admits(*t)) {
    return absl::PermissionDeniedError(
        absl::StrCat(field, ": task '", task, "' is not in the entitlement of identity '", who, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ResolvedSelection> Dataset::Resolve(const SelectionSpec& spec,
                                                   const LicensePolicy* entitlement,
                                                   const std::string& who) const {
  const auto tasks = ToSet(spec.tasks), categories = ToSet(spec.categories),
             splits = ToSet(spec.splits), languages = ToSet(spec.languages),
             excluded = ToSet(spec.exclude_tasks);
  // Licenses are matched by SPDX id, whatever the spelling asked for.
  std::set<std::string> licenses;
  for (const auto& l : spec.licenses) {
    M3SERVE_ASSIGN_OR_RETURN(std::string id, ParseLicense(l, "selection.licenses"));
    licenses.insert(std::move(id));
  }

  std::set<std::string> known_tasks, known_categories, known_splits, known_languages, known_licenses;
  for (const auto& [name, t] : catalog_.tasks) {
    known_tasks.insert(name);
    known_categories.insert(t.category);
    known_licenses.insert(t.license);
  }
  for (const auto& [g, n] : catalog_.counts) {
    known_splits.insert(g.split);
    known_languages.insert(g.lang);
  }
  auto check = [](const std::set<std::string>& asked, const std::set<std::string>& known,
                  const char* field, const char* what) -> absl::Status {
    for (const auto& a : asked) {
      if (!known.count(a)) {
        return absl::NotFoundError(absl::StrCat("selection.", field, ": unknown ", what, " '", a,
                                                "' (known: ", Known(known), ")"));
      }
    }
    return absl::OkStatus();
  };
  M3SERVE_RETURN_IF_ERROR(check(tasks, known_tasks, "tasks", "task"));
  M3SERVE_RETURN_IF_ERROR(check(categories, known_categories, "categories", "category"));
  M3SERVE_RETURN_IF_ERROR(check(splits, known_splits, "splits", "split"));
  M3SERVE_RETURN_IF_ERROR(check(languages, known_languages, "languages", "language"));
  M3SERVE_RETURN_IF_ERROR(check(licenses, known_licenses, "licenses", "license"));
  M3SERVE_RETURN_IF_ERROR(check(excluded, known_tasks, "exclude_tasks", "task"));
  for (const auto& t : tasks) {
    M3SERVE_RETURN_IF_ERROR(CheckTaskAllowed(t, nullptr, who, "selection.tasks"));
  }
  for (const auto& l : licenses) {
    if (!policy_.LicenseAllowed(l)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "selection.licenses: license '", l, "' is excluded by the server's license policy"));
    }
  }
  if (entitlement != nullptr) {
    for (const auto& t : tasks) {
      M3SERVE_RETURN_IF_ERROR(CheckTaskAllowed(t, entitlement, who, "selection.tasks"));
    }
    for (const auto& l : licenses) {
      if (!entitlement->LicenseAllowed(l)) {
        return absl::PermissionDeniedError(absl::StrCat(
            "selection.licenses: license '", l, "' is not in the entitlement of identity '", who, "'"));
      }
    }
  }

  M3SERVE_ASSIGN_OR_RETURN(std::shared_ptr<const EvalExclusion> guard, EvalGuard(spec, "selection."));

  ResolvedSelection r;
  if (guard) r.guard = guard->set.Describe();
  std::set<std::string> removed;
  auto task_matches = [&](const storage::TaskInfo& t) {
    if (!tasks.empty() && !tasks.count(t.name)) return false;
    if (excluded.count(t.name)) return false;
    if (!categories.empty() && !categories.count(t.category)) return false;
    if (!licenses.empty() && !licenses.count(t.license)) return false;
    if (spec.commercial_use_only && t.commercial_use != storage::CommercialUse::kYes) return false;
    if (spec.modality && t.modality != *spec.modality) return false;
    if (spec.held_out == SelectionSpec::HeldOut::kExclude && t.held_out) return false;
    if (spec.held_out == SelectionSpec::HeldOut::kOnly && !t.held_out) return false;
    return true;
  };
  for (const auto& [g, n] : catalog_.counts) {
    if (n == 0) continue;
    const storage::TaskInfo* t = Task(g.task);
    if (t == nullptr || !task_matches(*t)) continue;
    if (!splits.empty() && !splits.count(g.split)) continue;
    if (!languages.empty() && !languages.count(g.lang)) continue;
    if (!Admits(*t, entitlement)) {
      removed.insert(g.task);
      continue;
    }
    std::shared_ptr<const GroupExclusion> ex = guard ? guard->Find(g) : nullptr;
    if (ex != nullptr) r.guard_losses.emplace_back(g, ex->excluded());
    if (ex != nullptr && ex->excluded() >= n) continue;
    r.Add(g, n, std::move(ex));
  }
  r.removed_by_policy.assign(removed.begin(), removed.end());

  r.Seal();
  return r;
}

}  // namespace m3serve::server
