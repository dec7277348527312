#include "ingest/layout.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "storage/key_codec.h"

namespace m3serve::ingest {
namespace fs = std::filesystem;

namespace {

// Sorted sub-folders (dirs) or files (!dirs) of `dir`. A folder named *.jsonl
// counts as a file, so that it is reported instead of silently passed over.
std::vector<fs::path> SortedEntries(const fs::path& dir, bool dirs) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    bool is_dir = e.is_directory(ec) && e.path().extension() != ".jsonl";
    if (is_dir == dirs) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool WantTask(const DiscoverOptions& o, const std::string& task) {
  return o.tasks.empty() || std::find(o.tasks.begin(), o.tasks.end(), task) != o.tasks.end();
}

std::string Rel(const fs::path& p, const fs::path& root) {
  std::error_code ec;
  fs::path r = fs::relative(p, root, ec);
  return ec ? p.string() : r.generic_string();
}

// The data folder of a repository root (root/data, or root itself if it is one).
fs::path DataDir(const fs::path& root) {
  std::error_code ec;
  if (fs::is_directory(root / "data", ec)) return root / "data";
  return root;
}

bool LooksLikeM3it80(const fs::path& data) {
  std::error_code ec;
  if (fs::is_directory(data / "instructions", ec)) return true;
  for (const auto& dir : SortedEntries(data, true)) {
    std::string task = dir.filename().string();
    for (const auto& f : SortedEntries(dir, false)) {
      std::string name = f.filename().string();
      if (name == "train_500.jsonl" || name == "val_500.jsonl" || name == "test_500.jsonl") return true;
      if (absl::StartsWith(name, task + "_") && absl::EndsWith(name, ".jsonl")) {
        std::vector<std::string> parts = absl::StrSplit(name.substr(task.size() + 1), '_');
        if (parts.size() == 2 && !NormalizeSplit(parts[0]).empty()) return true;
      }
    }
  }
  return false;
}

void AddM3itFolder(const fs::path& root, const fs::path& folder_path, const std::string& category,
                   const TaskRegistry& registry, const DiscoverOptions& options,
                   Discovery* out) {
  const std::string folder = folder_path.filename().string();
  const std::string key = category + "/" + folder;
  const TaskSpec* base = registry.BaseForFolder(key);
  std::string base_name = base ? base->info.name : absl::StrReplaceAll(folder, {{"_", "-"}});
  if (!base) {
    if (const TaskSpec* by_name = registry.Find(base_name)) base = by_name;
  }
  if (!storage::ValidateName(base_name, "task").ok()) {
    out->warnings.push_back(absl::StrCat("skipped ", Rel(folder_path, root),
                                         ": folder name is not usable as a task name"));
    return;
  }
  const TaskSpec* reph = registry.VariantForFolder(base ? base->folder : key, "rephrased");
  std::string reph_name = reph ? reph->info.name : base_name + "-rephrased";

  // Instruction pool file.
  std::error_code ec;
  std::string pool_path;
  for (const char* name : {"instructions.json", "instruction.json", "instructions.jsonl"}) {
    // Anything by that name counts (a FIFO or a directory is refused, with
    // the reason, when the pool is loaded).
    if (fs::exists(folder_path / name, ec)) {
      pool_path = (folder_path / name).string();
      break;
    }
  }

  // Collect split files; keep the highest priority per (rephrased, split).
  struct Candidate {
    fs::path path;
    SplitFileName name;
  };
  std::map<std::pair<bool, std::string>, std::vector<Candidate>> by_split;
  for (const auto& f : SortedEntries(folder_path, false)) {
    std::string fname = f.filename().string();
    if (!absl::EndsWith(fname, ".jsonl") || absl::StartsWith(fname, "instruction")) continue;
    auto parsed = ParseSplitFileName(fname.substr(0, fname.size() - 6));
    if (!parsed || parsed->english_500) {
      out->warnings.push_back(absl::StrCat("skipped ", Rel(f, root),
                                           ": the file name names no split (train/val/test)"));
      continue;
    }
    by_split[{parsed->rephrased, parsed->split}].push_back({f, *parsed});
  }
  bool any = false;
  for (auto& [k, cands] : by_split) {
    int best = 0;
    for (const auto& c : cands) best = std::max(best, c.name.priority);
    for (const auto& c : cands) {
      if (c.name.priority < best) {
        std::string winner;
        for (const auto& w : cands) {
          if (w.name.priority == best) winner = w.path.filename().string();
        }
        out->warnings.push_back(absl::StrCat("skipped ", Rel(c.path, root), ": superseded by ", winner));
        continue;
      }
      const bool rephrased = k.first;
      const std::string task = rephrased ? reph_name : base_name;
      if (!WantTask(options, task)) continue;
      FileJob job;
      job.path = c.path.string();
      job.rel_path = Rel(c.path, root);
      const std::string lang = base ? base->info.default_lang : "en";
      job.task = registry.InfoFor(task, category, lang);
      if (job.task.category.empty()) job.task.category = category;
      job.variant = rephrased ? "rephrased" : (base ? base->variant : "");
      job.group = {task, c.name.split, job.task.default_lang};
      job.format = RowFormat::kM3it;
      job.task_dir = folder_path.string();
      if (!pool_path.empty()) job.pools.push_back({pool_path, job.task.default_lang});
      out->jobs.push_back(std::move(job));
      any = true;
    }
  }
  if (any && pool_path.empty()) {
    out->warnings.push_back(absl::StrCat(
        "no instructions.json in ", Rel(folder_path, root),
        ": rows without their own instruction are rejected (no pool to sample from)"));
  }
}

absl::Status AddM3it(const fs::path& root, const TaskRegistry& registry,
                     const DiscoverOptions& options, Discovery* out) {
  fs::path data = DataDir(root);
  size_t before = out->jobs.size();
  for (const auto& cat : SortedEntries(data, true)) {
    for (const auto& folder : SortedEntries(cat, true)) {
      AddM3itFolder(data.parent_path(), folder, cat.filename().string(), registry, options, out);
    }
  }
  if (out->jobs.size() == before && options.tasks.empty()) {
    out->warnings.push_back(absl::StrCat(root.string(), ": no row files found"));
  }
  return absl::OkStatus();
}

absl::Status AddM3it80(const fs::path& root, const TaskRegistry& registry,
                       const DiscoverOptions& options, Discovery* out) {
  fs::path data = DataDir(root);
  const fs::path base = data.parent_path();
  std::error_code ec;
  std::map<std::string, std::string> pools;  // lang -> path
  if (fs::is_directory(data / "instructions", ec)) {
    for (const auto& f : SortedEntries(data / "instructions", false)) {
      std::string name = f.filename().string();
      if (absl::EndsWith(name, ".jsonl")) pools[name.substr(0, name.size() - 6)] = f.string();
    }
  } else {
    out->warnings.push_back(absl::StrCat("no ", Rel(data / "instructions", base),
                                         " folder: translated rows keep their own instructions"));
  }
  for (const auto& dir : SortedEntries(data, true)) {
    const std::string task = dir.filename().string();
    if (task == "instructions") continue;
    if (!WantTask(options, task)) continue;
    if (!storage::ValidateName(task, "task").ok()) {
      out->warnings.push_back(absl::StrCat("skipped ", Rel(dir, base), ": not usable as a task name"));
      continue;
    }
    const TaskSpec* spec = registry.Find(task);
    for (const auto& f : SortedEntries(dir, false)) {
      std::string name = f.filename().string();
      if (!absl::EndsWith(name, ".jsonl")) continue;
      std::string stem = name.substr(0, name.size() - 6);
      if (stem == "train_500" || stem == "val_500" || stem == "test_500") continue;  // joined below
      std::vector<std::string> parts = absl::StrSplit(stem, '_');
      std::string split = parts.size() >= 3 ? NormalizeSplit(parts[parts.size() - 2]) : "";
      std::string lang = parts.size() >= 3 ? parts.back() : "";
      if (split.empty() || !storage::ValidateName(lang, "language").ok()) {
        out->warnings.push_back(absl::StrCat(
            "skipped ", Rel(f, base), ": expected <task>_<split>_<lang>.jsonl"));
        continue;
      }
      FileJob job;
      job.path = f.string();
      job.rel_path = Rel(f, base);
      job.task = registry.InfoFor(task, spec ? spec->info.category : "", "en");
      job.group = {task, split, lang};
      job.format = RowFormat::kM3it80Translated;
      job.task_dir = dir.string();
      const char* raw = split == "train" ? "train_500.jsonl"
                        : split == "validation" ? "val_500.jsonl" : "test_500.jsonl";
      job.raw_path = (dir / raw).string();
      job.raw_rel_path = Rel(dir / raw, base);
      if (auto it = pools.find(lang); it != pools.end()) job.pools.push_back({it->second, lang});
      out->jobs.push_back(std::move(job));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string NormalizeSplit(absl::string_view s) {
  if (s == "train") return "train";
  if (s == "val" || s == "dev" || s == "validation") return "validation";
  if (s == "test") return "test";
  return "";
}

std::optional<SplitFileName> ParseSplitFileName(absl::string_view stem) {
  SplitFileName out;
  static const std::regex kDated(R"(^(?:.*_)?(train|val|validation|dev|test)_\d{4}-\d{2}-\d{2}$)");
  std::string s(stem);
  std::smatch m;
  if (std::regex_match(s, m, kDated)) {
    out.split = NormalizeSplit(m[1].str());
    out.rephrased = true;
    return out;
  }
  if (s == "train_500" || s == "val_500" || s == "test_500") {
    out.split = NormalizeSplit(s.substr(0, s.find('_')));
    out.english_500 = true;
    return out;
  }
  if (absl::EndsWith(s, ".large")) {
    s.resize(s.size() - 6);
    out.priority = 1;
  }
  if (absl::EndsWith(s, "_v2")) {
    s.resize(s.size() - 3);
    out.priority = 2;
  }
  if (absl::StartsWith(s, "para_")) {
    s = s.substr(5);
    out.priority = std::max(out.priority, 1);
  }
  size_t us = s.rfind('_');
  std::string last = us == std::string::npos ? s : s.substr(us + 1);
  out.split = NormalizeSplit(last);
  if (out.split.empty()) return std::nullopt;
  return out;
}

absl::StatusOr<Discovery> DiscoverSources(const std::vector<std::string>& sources,
                                          const TaskRegistry& registry,
                                          const DiscoverOptions& options) {
  Discovery out;
  std::error_code ec;
  for (const auto& src : sources) {
    fs::path root(src);
    if (!fs::exists(root, ec)) {
      return absl::NotFoundError(absl::StrCat("SOURCE ", src, " does not exist"));
    }
    if (fs::is_regular_file(root, ec) || !fs::is_directory(root, ec)) {
      if (options.task.empty() || options.split.empty() || options.lang.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "SOURCE ", src, " is a file: a canonical JSONL file needs --task, --split and --lang"));
      }
      storage::GroupKey g{options.task, NormalizeSplit(options.split), options.lang};
      if (g.split.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--split '", options.split, "' is not one of train, val, validation, dev, test"));
      }
      M3SERVE_RETURN_IF_ERROR(storage::ValidateGroup(g));
      if (!WantTask(options, g.task)) continue;
      FileJob job;
      job.path = root.string();
      job.rel_path = fs::weakly_canonical(root, ec).string();
      job.task = registry.InfoFor(g.task, "", g.lang);
      job.group = g;
      job.format = RowFormat::kCanonical;
      job.task_dir = root.parent_path().string();
      out.jobs.push_back(std::move(job));
      continue;
    }
    fs::path data = DataDir(root);
    if (SortedEntries(data, true).empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SOURCE ", src, " is neither an M3IT nor an M3IT-80 repository (no task folders under ",
          data.string(), ") nor a JSONL file"));
    }
    if (LooksLikeM3it80(data)) {
      M3SERVE_RETURN_IF_ERROR(AddM3it80(root, registry, options, &out));
    } else {
      M3SERVE_RETURN_IF_ERROR(AddM3it(root, registry, options, &out));
    }
  }
  // The same file named twice (or via two SOURCEs) is ingested once.
  std::set<std::string> seen;
  std::vector<FileJob> unique;
  for (auto& j : out.jobs) {
    std::string id = fs::weakly_canonical(j.path, ec).string() + "|" + j.group.ToString();
    if (seen.insert(id).second) unique.push_back(std::move(j));
  }
  out.jobs = std::move(unique);
  return out;
}

}  // namespace m3serve::ingest
