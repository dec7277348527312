#include "server/mixture.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace m3serve::server {
namespace {

std::string Field(size_t i, const char* what) {
  return absl::StrCat("mixture.components[", i, "].", what);
}

}  // namespace

absl::StatusOr<std::vector<OrderComponent>> ResolveMixture(const Dataset& dataset,
                                                           const ResolvedSelection& selection,
                                                           const MixtureSpec& spec,
                                                           const LicensePolicy* entitlement,
                                                           const std::string& who) {
  if (spec.epoch_size && *spec.epoch_size == 0) {
    return absl::InvalidArgumentError("mixture.epoch_size must be at least 1 (absent: the natural size)");
  }
  if (!spec.mixes()) {
    return std::vector<OrderComponent>{{"", std::make_shared<ResolvedSelection>(selection), 1.0}};
  }
  const bool tempered = spec.temperature.has_value();
  const double temperature = spec.temperature.value_or(0);
  if (tempered && !(std::isfinite(temperature) && temperature > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("mixture.temperature must be finite and > 0, got ", temperature));
  }

  // Which (task, lang) keys exist, for the messages.
  std::set<std::string> known_langs;
  for (const auto& [g, n] : dataset.catalog().counts) known_langs.insert(g.lang);

  // Each group of the selection goes to at most one component.
  std::map<std::string, size_t> owner;  // group -> index of the key that took it
  struct Parsed {
    std::string key;
    double weight;
    std::vector<size_t> groups;  // indices into selection.groups
  };
  std::vector<Parsed> parsed;
  double star_weight = -1;
  size_t star_index = 0;
  for (size_t i = 0; i < spec.components.size(); ++i) {
    const std::string& key = spec.components[i].first;
    const std::optional<double>& given = spec.components[i].second;
    if (tempered && given) {
      return absl::InvalidArgumentError(absl::StrCat(
          Field(i, "weight"), " ('", key, "'): give weights or mixture.temperature, not both"));
    }
    if (!tempered && !given) {
      return absl::InvalidArgumentError(absl::StrCat(Field(i, "weight"), " ('", key,
                                                     "') is missing (or give mixture.temperature)"));
    }
    const double weight = given.value_or(1);
    if (!(std::isfinite(weight) && weight > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(Field(i, "weight"), " ('", key, "') must be finite and > 0, got ", weight));
    }
    if (key == "*") {
      if (star_weight >= 0) return absl::InvalidArgumentError(absl::StrCat(Field(i, "key"), ": '*' given twice"));
      star_weight = weight;
      star_index = i;
      continue;
    }
    const size_t colon = key.find(':');
    const std::string task = key.substr(0, colon);
    const std::string lang = colon == std::string::npos ? "" : key.substr(colon + 1);
    const storage::TaskInfo* t = dataset.Task(task);
    if (t == nullptr) {
      std::vector<std::string> names;
      for (const auto& [name, info] : dataset.catalog().tasks) names.push_back(name);
      std::string known = absl::StrJoin(names, ", ");
      if (known.size() > 300) known = known.substr(0, 300) + ", ...";
      return absl::InvalidArgumentError(absl::StrCat(Field(i, "key"), ": unknown task '", task,
                                                     "' (keys are task or task:language; known tasks: ",
                                                     known, ")"));
    }
    if (colon != std::string::npos && !known_langs.count(lang)) {
      return absl::InvalidArgumentError(absl::StrCat(Field(i, "key"), ": unknown language '", lang,
                                                     "' in '", key, "'"));
    }
    M3SERVE_RETURN_IF_ERROR(dataset.CheckTaskAllowed(task, entitlement, who, Field(i, "key")));
    Parsed p{key, weight, {}};
    for (size_t g = 0; g < selection.groups.size(); ++g) {
      const storage::GroupKey& gk = selection.groups[g];
      if (gk.task != task || (!lang.empty() && gk.lang != lang)) continue;
      auto [it, fresh] = owner.emplace(gk.ToString(), i);
      if (!fresh) {
        return absl::InvalidArgumentError(absl::StrCat(Field(i, "key"), ": '", key, "' overlaps '",
                                                       spec.components[it->second].first, "'"));
      }
      p.groups.push_back(g);
    }
    if (p.groups.empty()) {
      uint64_t guarded = 0;
      for (const auto& [gk, n] : selection.guard_losses) {
        if (gk.task == task && (lang.empty() || gk.lang == lang)) guarded += n;
      }
      return absl::InvalidArgumentError(absl::StrCat(
          Field(i, "key"), ": '", key, "' matches no instance of the selection",
          guarded ? absl::StrCat(" (the evaluation guard left out its ", guarded,
                                 " instances: each shares an image with ", selection.guard, ")")
                  : ""));
    }
    parsed.push_back(std::move(p));
  }
  if (star_weight >= 0 || spec.components.empty()) {
    // Every task the keys leave, one component each.
    std::map<std::string, std::vector<size_t>> rest;
    for (size_t g = 0; g < selection.groups.size(); ++g) {
      if (!owner.count(selection.groups[g].ToString())) rest[selection.groups[g].task].push_back(g);
    }
    if (rest.empty() && star_weight >= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          Field(star_index, "key"), ": '*' matches no instance the other keys leave"));
    }
    for (auto& [task, groups] : rest) parsed.push_back({task, star_weight >= 0 ? star_weight : 1, groups});
  }
  if (parsed.empty()) return absl::InvalidArgumentError("mixture: no component matches the selection");

  std::sort(parsed.begin(), parsed.end(), [](const Parsed& a, const Parsed& b) { return a.key < b.key; });
  std::vector<OrderComponent> out;
  for (const Parsed& p : parsed) {
    auto sel = std::make_shared<ResolvedSelection>();
    for (size_t g : p.groups) sel->AddFrom(selection, g);
    sel->Seal();
    double w = p.weight;
    if (tempered) w = std::pow(static_cast<double>(sel->total()), 1.0 / temperature);
    if (!std::isfinite(w) || w <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("mixture.temperature ", temperature,
                                                     " is too small: the weights overflow"));
    }
    out.push_back({p.key, std::move(sel), w});
  }
  return out;
}

}  // namespace m3serve::server
