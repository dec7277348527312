#include "ingest/job_inputs.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "ingest/instruction_pool.h"
#include "ingest/source_check.h"
#include "ingest/source_file.h"

namespace m3serve::ingest {
namespace {

// Class tables are small; a larger file is identified by its error.
constexpr uint64_t kMaxClassTableBytes = 64ull << 20;

// The identity of what a side file gives: its kind and the bytes that matter.
Hash128 IdentityOf(absl::string_view what, absl::string_view content) {
  return ContentHash(absl::StrCat(what, ":", content));
}

std::string Key(const SideFile& f, const std::string& task) {
  return absl::StrCat(static_cast<int>(f.kind), "|", f.path, "|", f.kind == SideFile::Kind::kPool ? task : "");
}

// The path of a side file as the user knows it: relative to the source root
// when it lies under it (the root is the data file's path without rel_path).
std::string Shown(const FileJob& job, const std::string& path) {
  if (absl::EndsWith(job.path, job.rel_path)) {
    const std::string root = job.path.substr(0, job.path.size() - job.rel_path.size());
    if (!root.empty() && absl::StartsWith(path, root)) return path.substr(root.size());
  }
  return path;
}

}  // namespace

Mapping MappingOf(const FileJob& job) {
  return job.format == RowFormat::kM3it80Translated ? Mapping::kTranslated
         : job.format == RowFormat::kCanonical      ? Mapping::kGeneric
                                                    : MappingForTask(job.group.task, job.variant);
}

std::vector<SideFile> SideFilesOf(const FileJob& job) {
  std::vector<SideFile> out;
  for (const PoolFile& pool : job.pools) {
    out.push_back({SideFile::Kind::kPool,
                   absl::StrCat("pool:", pool.lang, ":", std::filesystem::path(pool.path).filename().string()),
                   pool.path});
  }
  const Mapping mapping = MappingOf(job);
  if ((mapping == Mapping::kImagenet || mapping == Mapping::kSs) && !job.task_dir.empty()) {
    // LoadTaskAux reads both when present; an added one counts as a change.
    out.push_back({SideFile::Kind::kClassTable, "mapping.txt", job.task_dir + "/mapping.txt"});
    out.push_back({SideFile::Kind::kClassTable, "labels.json", job.task_dir + "/labels.json"});
  }
  if (mapping == Mapping::kTranslated && !job.raw_path.empty()) {
    out.push_back({SideFile::Kind::kEnglishRows, "english", job.raw_path});
  }
  return out;
}

storage::SideFileState SideFileIdentities::Identify(const SideFile& f, const std::string& task,
                                                   const absl::StatusOr<SourceStat>* known) {
  const std::string key = Key(f, task);
  auto it = identified_.find(key);
  if (it != identified_.end()) return it->second;
  storage::SideFileState st;
  st.role = f.role;
  const absl::StatusOr<SourceStat> stat = known != nullptr ? *known : StatRegularFile(f.path);
  if (!stat.ok()) {
    // Absent, or not readable as a regular file: identified by that alone
    // (checked_ns 0: never trusted, so looked at again by the next run).
    st.identity = IdentityOf(absl::IsNotFound(stat.status()) ? "absent" : "unreadable", "");
    return identified_[key] = st;
  }
  st.size = stat->size;
  st.mtime_ns = stat->mtime_ns;
  st.inode = stat->inode;
  st.device = stat->device;
  st.checked_ns = now_ns_;
  switch (f.kind) {
    case SideFile::Kind::kPool: {
      // The instructions the task takes from the file, so an edit of another
      // task's entries (M3IT-80 pools hold every task) is no change.
      absl::StatusOr<std::vector<std::string>> pool = LoadInstructionPool(f.path, task);
      if (!pool.ok()) {
        st.identity = IdentityOf("unusable pool", pool.status().message());
        break;
      }
      std::string all;
      for (const std::string& s : *pool) absl::StrAppend(&all, s.size(), ":", s);
      st.identity = IdentityOf("pool", all);
      pools_[f.path + "|" + task] = std::move(*pool);
      break;
    }
    case SideFile::Kind::kClassTable: {
      absl::StatusOr<std::string> bytes = ReadRegularFile(f.path, kMaxClassTableBytes);
      st.identity = bytes.ok() ? IdentityOf("bytes", *bytes) : IdentityOf("unreadable", bytes.status().message());
      break;
    }
    case SideFile::Kind::kEnglishRows: {
      absl::StatusOr<HashedFile> hashed = HashWholeFile(f.path);
      st.identity = hashed.ok() ? IdentityOf("english", hashed->fingerprint)
                                : IdentityOf("unreadable", hashed.status().message());
      break;
    }
  }
  return identified_[key] = st;
}

std::vector<storage::SideFileState> SideFileIdentities::Current(
    const FileJob& job, const std::vector<storage::SideFileState>& recorded) {
  std::vector<storage::SideFileState> out;
  for (const SideFile& f : SideFilesOf(job)) {
    const storage::SideFileState* before = nullptr;
    for (const auto& r : recorded) {
      if (r.role == f.role) before = &r;
    }
    absl::StatusOr<SourceStat> stat = absl::UnknownError("not taken");
    const absl::StatusOr<SourceStat>* known = nullptr;
    if (before != nullptr && !verify_) {
      stat = StatRegularFile(f.path);
      if (stat.ok() && StatTrusted(*stat, before->size, before->mtime_ns, before->inode, before->device,
                                   before->checked_ns)) {
        out.push_back(*before);
        continue;
      }
      known = &stat;  // Identify does not stat it again
    }
    out.push_back(Identify(f, job.group.task, known));
  }
  return out;
}

const std::vector<std::string>* SideFileIdentities::LoadedPool(const std::string& path,
                                                               const std::string& task) const {
  auto it = pools_.find(path + "|" + task);
  return it == pools_.end() ? nullptr : &it->second;
}

std::string SideFilesChange(const FileJob& job, const std::vector<storage::SideFileState>& recorded,
                            const std::vector<storage::SideFileState>& now) {
  const std::vector<SideFile> files = SideFilesOf(job);
  auto describe = [&](const std::string& role) {
    for (const SideFile& f : files) {
      if (f.role != role) continue;
      const std::string shown = Shown(job, f.path);
      switch (f.kind) {
        case SideFile::Kind::kPool: return absl::StrCat("its instruction pool ", shown, " changed");
        case SideFile::Kind::kClassTable: return absl::StrCat("its class table ", shown, " changed");
        case SideFile::Kind::kEnglishRows: return absl::StrCat("its English rows ", shown, " changed");
      }
    }
    return absl::StrCat("its side file ", role, " is no longer used");
  };
  for (const auto& n : now) {
    const storage::SideFileState* before = nullptr;
    for (const auto& r : recorded) {
      if (r.role == n.role) before = &r;
    }
    if (before == nullptr || before->identity != n.identity) return describe(n.role);
  }
  for (const auto& r : recorded) {
    bool kept = false;
    for (const auto& n : now) kept = kept || n.role == r.role;
    if (!kept) return describe(r.role);
  }
  return "";
}

}  // namespace m3serve::ingest
