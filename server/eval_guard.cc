#include "server/eval_guard.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace m3serve::server {

std::string EvalSet::Describe() const {
  return absl::StrCat(absl::StrJoin(splits, "+"), " of ",
                      tasks.empty() ? std::string("every task") : absl::StrJoin(tasks, ", "));
}

bool EvalSet::Contains(const storage::GroupKey& g) const {
  return std::binary_search(splits.begin(), splits.end(), g.split) &&
         (tasks.empty() || std::binary_search(tasks.begin(), tasks.end(), g.task));
}

void GroupExclusion::AddRun(uint64_t begin, uint64_t end) {
  kept_before_.push_back(begin - excluded());
  begin_.push_back(begin);
  end_.push_back(end);
  excluded_before_.push_back(excluded() + (end - begin));
}

uint64_t GroupExclusion::KeptOrdinal(uint64_t i) const {
  // Runs whose kept_before <= i all lie before the i-th kept instance.
  const size_t k = static_cast<size_t>(std::upper_bound(kept_before_.begin(), kept_before_.end(), i) -
                                       kept_before_.begin());
  return i + excluded_before_[k];
}

bool GroupExclusion::Excludes(uint64_t ordinal) const {
  auto it = std::upper_bound(begin_.begin(), begin_.end(), ordinal);
  if (it == begin_.begin()) return false;
  return ordinal < end_[static_cast<size_t>(it - begin_.begin()) - 1];
}

std::shared_ptr<const GroupExclusion> EvalExclusion::Find(const storage::GroupKey& g) const {
  auto it = groups.find(g);
  return it == groups.end() ? nullptr : it->second;
}

std::shared_ptr<const EvalExclusion> ComputeEvalExclusion(const storage::ImageIndex& index, EvalSet set) {
  auto out = std::make_shared<EvalExclusion>();
  std::vector<bool> tainted(index.images, false);
  for (const auto& [g, refs] : index.groups) {
    if (!set.Contains(g)) continue;
    for (uint32_t id : refs.refs) {
      if (!tainted[id]) {
        tainted[id] = true;
        ++out->eval_images;
      }
    }
  }
  for (const auto& [g, refs] : index.groups) {
    auto ex = std::make_shared<GroupExclusion>();
    uint64_t run_begin = 0;
    bool in_run = false;
    const uint64_t n = refs.instances();
    for (uint64_t o = 0; o < n; ++o) {
      bool hit = false;
      for (uint32_t i = refs.offsets[o]; i < refs.offsets[o + 1] && !hit; ++i) hit = tainted[refs.refs[i]];
      if (hit && !in_run) run_begin = o;
      if (!hit && in_run) ex->AddRun(run_begin, o);
      in_run = hit;
    }
    if (in_run) ex->AddRun(run_begin, n);
    if (ex->excluded() == 0) continue;
    out->excluded += ex->excluded();
    out->groups.emplace(g, std::move(ex));
  }
  out->set = std::move(set);
  return out;
}

}  // namespace m3serve::server
