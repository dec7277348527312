#include "server/attribution.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/json_writer.h"

namespace m3serve::server {
namespace {

// Marks images and counts the distinct ones marked under one tag.
class ImageCounter {
 public:
  explicit ImageCounter(uint32_t images) : tag_(images, 0) {}
  // Count the images of the kept instances of group `g` of `sel` under `tag` (>= 1).
  void AddGroup(const storage::ImageIndex& index, const ResolvedSelection& sel, size_t g, uint32_t tag,
                uint64_t* count) {
    auto it = index.groups.find(sel.groups[g]);
    if (it == index.groups.end()) return;
    const storage::ImageRefs& refs = it->second;
    const GroupExclusion* ex = sel.exclusions[g].get();
    for (uint64_t o = 0; o < refs.instances(); ++o) {
      if (ex != nullptr && ex->Excludes(o)) continue;
      for (uint32_t i = refs.offsets[o]; i < refs.offsets[o + 1]; ++i) {
        uint32_t& t = tag_[refs.refs[i]];
        if (t != tag) {
          t = tag;
          ++*count;
        }
      }
    }
  }

 private:
  std::vector<uint32_t> tag_;
};

// Split `total` over `weights` in proportion (largest remainders).
std::vector<uint64_t> Apportion(uint64_t total, const std::vector<uint64_t>& weights) {
  std::vector<uint64_t> out(weights.size(), 0);
  uint64_t sum = 0;
  for (uint64_t w : weights) sum += w;
  if (sum == 0) return out;
  std::vector<std::pair<unsigned __int128, size_t>> rest;
  uint64_t given = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const unsigned __int128 p = static_cast<unsigned __int128>(total) * weights[i];
    out[i] = static_cast<uint64_t>(p / sum);
    given += out[i];
    rest.emplace_back(p % sum, i);
  }
  std::stable_sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < total && k < rest.size(); ++k, ++given) ++out[rest[k].second];
  return out;
}

}  // namespace

absl::StatusOr<AttributionReport> BuildAttribution(const Dataset& dataset, const EpochOrder& order) {
  const storage::ImageIndex* index = dataset.image_index();
  if (index == nullptr) {
    return absl::FailedPreconditionError(
        "attribution counts images from the store's image index, which this store does not have; run "
        "`m3serve-admin ingest` on the store again (with its sources) to build it");
  }
  AttributionReport r;
  r.dataset_version = dataset.version();
  // (source, license, commercial use) -> row; a source whose tasks carry
  // different terms gets one row per terms.
  using Key = std::tuple<std::string, std::string, storage::CommercialUse>;
  std::map<Key, SourceAttribution> rows;
  auto row_of = [&](const std::string& task) -> SourceAttribution& {
    const storage::TaskInfo* t = dataset.Task(task);
    static const storage::TaskInfo kNone;
    const storage::TaskInfo& info = t ? *t : kNone;
    SourceAttribution& row = rows[{info.source_dataset, info.license, info.commercial_use}];
    row.source_dataset = info.source_dataset;
    row.license = info.license;
    row.license_text = info.license_text;
    row.commercial_use = info.commercial_use;
    if (std::find(row.tasks.begin(), row.tasks.end(), task) == row.tasks.end()) row.tasks.push_back(task);
    return row;
  };
  // The groups of each row, counted row by row (a row's groups need not be
  // adjacent: OK-VQA and VQA v2 have tasks between them).
  std::map<Key, std::vector<std::pair<const ResolvedSelection*, size_t>>> row_groups;
  for (size_t c = 0; c < order.components().size(); ++c) {
    const OrderComponent& comp = order.components()[c];
    const ResolvedSelection& sel = *comp.selection;
    if (r.eval_set.empty()) r.eval_set = sel.guard;
    // Instances per row of this component, for its samples.
    std::map<Key, uint64_t> here;
    for (size_t g = 0; g < sel.groups.size(); ++g) {
      SourceAttribution& row = row_of(sel.groups[g].task);
      const uint64_t n = sel.prefix[g + 1] - sel.prefix[g];
      row.instances += n;
      r.instances += n;
      const Key key{row.source_dataset, row.license, row.commercial_use};
      here[key] += n;
      row_groups[key].emplace_back(&sel, g);
    }
    std::vector<SourceAttribution*> targets;
    std::vector<uint64_t> weights;
    for (const auto& [key, n] : here) {
      targets.push_back(&rows[key]);
      weights.push_back(n);
    }
    const std::vector<uint64_t> samples = Apportion(order.quota(c), weights);
    for (size_t i = 0; i < targets.size(); ++i) targets[i]->samples += samples[i];
    r.samples += order.quota(c);
  }
  ImageCounter per_row(index->images), all(index->images);
  uint32_t tag = 0;
  for (const auto& [key, groups] : row_groups) {
    ++tag;
    for (const auto& [sel, g] : groups) {
      per_row.AddGroup(*index, *sel, g, tag, &rows[key].images);
      all.AddGroup(*index, *sel, g, UINT32_MAX, &r.images);
    }
  }
  for (auto& [key, row] : rows) {
    std::sort(row.tasks.begin(), row.tasks.end());
    r.sources.push_back(std::move(row));
  }
  return r;
}

namespace {

std::string Tasks(const SourceAttribution& s) { return absl::StrJoin(s.tasks, ", "); }

// Markdown table cells: no pipes or line breaks from metadata text.
std::string Cell(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out;
}

}  // namespace

std::string RenderAttribution(const AttributionReport& r, ReportFormat format) {
  if (format == ReportFormat::kJson) {
    JsonWriter w(2);
    w.BeginObject().Key("dataset_version").String(r.dataset_version).Key("eval_set").String(r.eval_set)
        .Key("instances").Uint(r.instances).Key("images").Uint(r.images).Key("samples").Uint(r.samples)
        .Key("sources").BeginArray();
    for (const auto& s : r.sources) {
      w.BeginObject().Key("source_dataset").String(s.source_dataset).Key("tasks").BeginArray();
      for (const auto& t : s.tasks) w.String(t);
      w.EndArray().Key("license").String(s.license).Key("license_text").String(s.license_text)
          .Key("commercial_use").String(storage::CommercialUseName(s.commercial_use))
          .Key("instances").Uint(s.instances).Key("images").Uint(s.images).Key("samples").Uint(s.samples)
          .EndObject();
    }
    w.EndArray().Key("removed_by_policy").BeginArray();
    for (const auto& t : r.removed_by_policy) w.String(t);
    w.EndArray().EndObject();
    return w.str() + "\n";
  }
  std::string out;
  const std::string guard =
      r.eval_set.empty() ? "" : absl::StrCat("Instances sharing an image with ", r.eval_set, " are left out.");
  if (format == ReportFormat::kMarkdown) {
    absl::StrAppend(&out, "## Training data attribution\n\n",
                    "M3IT (dataset version `", r.dataset_version, "`): ", r.instances, " instances, ", r.images,
                    " distinct images, ", r.samples, " samples per epoch.", guard.empty() ? "" : " ", guard,
                    "\n\n| Source dataset | Tasks | License (SPDX) | License as published | Commercial use | "
                    "Instances | Images | Samples/epoch |\n|---|---|---|---|---|---:|---:|---:|\n");
    for (const auto& s : r.sources) {
      absl::StrAppend(&out, "| ", Cell(s.source_dataset), " | ", Cell(Tasks(s)), " | `", Cell(s.license), "` | ",
                      Cell(s.license_text), " | ", storage::CommercialUseName(s.commercial_use), " | ", s.instances,
                      " | ", s.images, " | ", s.samples, " |\n");
    }
    if (!r.removed_by_policy.empty()) {
      absl::StrAppend(&out, "\nLeft out by the server's license policy: ", absl::StrJoin(r.removed_by_policy, ", "),
                      ".\n");
    }
    return out;
  }
  absl::StrAppend(&out, "attribution of dataset version ", r.dataset_version, ": ", r.instances, " instances, ",
                  r.images, " distinct images, ", r.samples, " samples per epoch\n");
  if (!guard.empty()) absl::StrAppend(&out, guard, "\n");
  int width = 6, license_width = 7;
  for (const auto& s : r.sources) {
    width = std::max(width, static_cast<int>(s.source_dataset.size()));
    license_width = std::max(license_width, static_cast<int>(s.license.size()));
  }
  absl::StrAppend(&out, absl::StrFormat("%-*s  %-*s  %-10s %10s %10s %12s  %s\n", width, "SOURCE", license_width,
                                        "LICENSE", "COMMERCIAL", "INSTANCES", "IMAGES", "SAMPLES",
                                        "TASKS (LICENSE AS PUBLISHED)"));
  for (const auto& s : r.sources) {
    absl::StrAppend(&out, absl::StrFormat("%-*s  %-*s  %-10s %10d %10d %12d  %s (%s)\n", width, s.source_dataset,
                                          license_width, s.license, storage::CommercialUseName(s.commercial_use),
                                          s.instances, s.images, s.samples, Tasks(s), s.license_text));
  }
  if (!r.removed_by_policy.empty()) {
    absl::StrAppend(&out, "left out by the server's license policy: ", absl::StrJoin(r.removed_by_policy, ", "),
                    "\n");
  }
  return out;
}

}  // namespace m3serve::server
