#include "server/image_census.h"

#include <algorithm>
#include <map>

namespace m3serve::server {
namespace {

struct Use {
  Hash128 image;
  uint32_t task;
  auto operator<=>(const Use&) const = default;
};

void SortUnique(std::vector<Use>* uses) {
  std::sort(uses->begin(), uses->end());
  uses->erase(std::unique(uses->begin(), uses->end()), uses->end());
}

}  // namespace

absl::StatusOr<ImageCensus> ImageCensus::Build(const InstanceReader& reader) {
  ImageCensus census;
  std::map<std::string, uint32_t> index;
  std::vector<Use> uses;
  size_t compacted = 1 << 16;  // sort and drop repeats whenever the list doubles
  absl::Status s = reader.ForEachInstance([&](storage::Instance&& x) {
    auto [it, added] = index.try_emplace(x.group.task, static_cast<uint32_t>(census.tasks_.size()));
    if (added) census.tasks_.push_back(x.group.task);
    for (const Hash128& h : x.images) uses.push_back({h, it->second});
    if (uses.size() >= 2 * compacted) {
      SortUnique(&uses);
      compacted = std::max(compacted, uses.size());
    }
    return true;
  });
  if (!s.ok()) return s;
  SortUnique(&uses);
  std::map<std::vector<uint32_t>, uint64_t> sets;
  for (size_t i = 0; i < uses.size();) {
    std::vector<uint32_t> tasks;
    size_t j = i;
    for (; j < uses.size() && uses[j].image == uses[i].image; ++j) tasks.push_back(uses[j].task);
    ++sets[std::move(tasks)];
    i = j;
  }
  census.sets_.assign(sets.begin(), sets.end());
  return census;
}

uint64_t ImageCensus::Count(const std::function<bool(const std::string& task)>& admits) const {
  std::vector<bool> admitted(tasks_.size());
  for (size_t i = 0; i < tasks_.size(); ++i) admitted[i] = admits(tasks_[i]);
  uint64_t n = 0;
  for (const auto& [tasks, images] : sets_) {
    if (std::any_of(tasks.begin(), tasks.end(), [&](uint32_t t) { return admitted[t]; })) n += images;
  }
  return n;
}

uint64_t ImageCensus::total() const {
  return Count([](const std::string&) { return true; });
}

}  // namespace m3serve::server
