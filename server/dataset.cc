#include "server/dataset.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/license.h"
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
  return {g, p - prefix[g]};
}

void ResolvedSelection::Seal() {
  // The digest covers what positions depend on: the ordered groups and their
  // sizes. Two requests that resolve to the same groups share order and tokens.
  StreamingHash h;
  for (size_t i = 0; i < groups.size(); ++i) {
    h.AddRecord(groups[i].ToString());
    h.AddRecord(absl::StrCat(prefix[i + 1] - prefix[i]));
  }
  digest = h.Finish();
}

absl::StatusOr<std::unique_ptr<Dataset>> Dataset::Open(const storage::StoreOptions& store_options,
                                                       LicensePolicy policy) {
  std::unique_ptr<Dataset> d(new Dataset());
  M3SERVE_ASSIGN_OR_RETURN(d->store_, storage::Store::Open(store_options));
  M3SERVE_ASSIGN_OR_RETURN(storage::Catalog catalog, d->store_->ReadCatalog());
  d->reader_ = std::make_unique<StoreReader>(d->store_.get());
  d->Init(std::move(catalog), std::move(policy));
  return d;
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

  ResolvedSelection r;
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
    r.Add(g, n);
  }
  r.removed_by_policy.assign(removed.begin(), removed.end());

  r.Seal();
  return r;
}

}  // namespace m3serve::server
