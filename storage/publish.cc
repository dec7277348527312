#include "storage/publish.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace m3serve::storage {
namespace fs = std::filesystem;
namespace {

constexpr char kTmpPrefix[] = ".tmp-";
// Leftovers of a killed publish older than this are removed by a clean-up.
constexpr absl::Duration kLeftoverAge = absl::Hours(1);

bool IsVersion(absl::string_view v) {
  if (v.size() != 32) return false;
  return std::all_of(v.begin(), v.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// `text` written to `path` atomically: beside it, fsynced, renamed, the folder fsynced.
absl::Status WriteAtomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.parent_path() / absl::StrCat(".", path.filename().string(), kTmpPrefix, getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(absl::StrCat("write ", tmp.string()));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = Errno(absl::StrCat("write ", path.string()));
    ::unlink(tmp.c_str());
    return s;
  }
  int dir = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Time> ModifiedAt(const fs::path& p) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) return Errno(absl::StrCat("stat ", p.string()));
  return absl::TimeFromTimespec(st.st_mtim);
}

// The pointer's version, or "" when there is no pointer.
absl::StatusOr<std::string> ReadPointer(const fs::path& root) {
  const fs::path p = root / kPointerFile;
  std::error_code ec;
  if (!fs::exists(p, ec)) return std::string();
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  if (!f) return absl::UnavailableError(absl::StrCat("read ", p.string()));
  std::string v(absl::StripAsciiWhitespace(ss.str()));
  if (!IsVersion(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat(p.string(), ": '", absl::CHexEscape(v.substr(0, 64)), "' is not a dataset version (32 hex digits)"));
  }
  return v;
}

// A RocksDB database lives here (its own CURRENT / IDENTITY files).
bool IsStoreDir(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p / "CURRENT", ec) || fs::exists(p / "IDENTITY", ec);
}

}  // namespace

bool IsPublishRoot(const std::string& path) {
  std::error_code ec;
  return fs::exists(fs::path(path) / kPointerFile, ec) || fs::is_directory(fs::path(path) / kVersionsDir, ec);
}

absl::StatusOr<ResolvedStore> ResolveStore(const std::string& path) {
  if (!IsPublishRoot(path)) return ResolvedStore{path, "", ""};
  M3SERVE_ASSIGN_OR_RETURN(std::string v, ReadPointer(path));
  if (v.empty()) {
    return absl::NotFoundError(absl::StrCat("publish root ", path, " has no published version yet (no ", kPointerFile,
                                            "): run m3serve-admin publish"));
  }
  const fs::path dir = fs::path(path) / kVersionsDir / v;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(path, "/", kPointerFile, " names version ", v, ", but ", dir.string(),
                                            " is missing; publish again"));
  }
  return ResolvedStore{dir.string(), v, path};
}

absl::StatusOr<std::string> StoreVersion(const Store& store) {
  M3SERVE_ASSIGN_OR_RETURN(Catalog c, store.ReadCatalog());
  return c.fingerprint.Hex();
}

absl::StatusOr<std::unique_ptr<Store>> OpenResolved(const ResolvedStore& resolved, const StoreOptions& options) {
  StoreOptions o = options;
  o.path = resolved.store;
  M3SERVE_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(o));
  if (!resolved.version.empty()) {
    M3SERVE_ASSIGN_OR_RETURN(std::string v, StoreVersion(*store));
    if (v != resolved.version) {
      return absl::FailedPreconditionError(absl::StrCat("store ", resolved.store, " has dataset version ", v,
                                                        ", not the ", resolved.version, " its pointer names"));
    }
  }
  return store;
}

absl::StatusOr<PublishReport> Publish(const Store& store, const std::string& root_path, const PublishOptions& options) {
  const fs::path root(root_path);
  std::error_code ec;
  // Refuse what is not (or cannot become) a publish root before writing anything.
  if (fs::exists(root, ec)) {
    if (!fs::is_directory(root, ec)) {
      return absl::FailedPreconditionError(absl::StrCat(root_path, " is not a folder"));
    }
    if (IsStoreDir(root)) {
      return absl::FailedPreconditionError(absl::StrCat(
          root_path, " holds a store itself; publish into a new (or empty) folder and point servers at it "
                     "(nothing was changed)"));
    }
    std::vector<std::string> strangers;
    for (const auto& e : fs::directory_iterator(root, ec)) {
      const std::string name = e.path().filename().string();
      if (name == kPointerFile || name == kVersionsDir || name == kLeasesDir ||
          absl::StartsWith(name, absl::StrCat(".", kPointerFile, kTmpPrefix))) {
        continue;
      }
      strangers.push_back(name);
    }
    if (!strangers.empty()) {
      std::sort(strangers.begin(), strangers.end());
      if (strangers.size() > 5) strangers.resize(5);
      return absl::FailedPreconditionError(absl::StrCat(
          root_path, " holds files that are not a publish root's (", absl::StrJoin(strangers, ", "),
          "); publish into a new (or empty) folder (nothing was changed)"));
    }
  }
  M3SERVE_ASSIGN_OR_RETURN(std::string previous, ReadPointer(root));
  M3SERVE_ASSIGN_OR_RETURN(std::string version, StoreVersion(store));
  PublishReport report;
  report.version = version;
  report.previous = previous;
  fs::create_directories(root / kVersionsDir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("create ", (root / kVersionsDir).string(), ": ", ec.message()));
  fs::create_directories(root / kLeasesDir, ec);
  const fs::path target = root / kVersionsDir / version;
  if (fs::exists(target, ec)) {
    // Already published (a re-run): it must be that very version.
    StoreOptions o;
    o.path = target.string();
    o.read_only = true;
    o.block_cache_bytes = 8 << 20;
    auto there = Store::Open(o);
    absl::StatusOr<std::string> v = there.ok() ? StoreVersion(**there) : there.status();
    if (!v.ok() || *v != version) {
      return absl::FailedPreconditionError(absl::StrCat(
          target.string(), v.ok() ? absl::StrCat(" holds a store of version ", *v)
                                  : absl::StrCat(" is not a readable store (", v.status().message(), ")"),
          "; it was not replaced and nothing was deleted: move it away after checking what it is"));
    }
  } else {
    const fs::path tmp = root / kVersionsDir / absl::StrCat(kTmpPrefix, version);
    fs::remove_all(tmp, ec);  // a leftover of a killed publish of this version
    M3SERVE_RETURN_IF_ERROR(store.Checkpoint(tmp.string()));
    {
      StoreOptions o;
      o.path = tmp.string();
      o.read_only = true;
      o.block_cache_bytes = 8 << 20;
      M3SERVE_ASSIGN_OR_RETURN(std::unique_ptr<Store> copy, Store::Open(o));
      M3SERVE_ASSIGN_OR_RETURN(std::string v, StoreVersion(*copy));
      if (v != version) {
        fs::remove_all(tmp, ec);
        return absl::InternalError(absl::StrCat("the checkpoint has version ", v, ", the store ", version));
      }
    }
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
      absl::Status s = Errno(absl::StrCat("rename ", tmp.string(), " to ", target.string()));
      fs::remove_all(tmp, ec);
      return s;
    }
    report.written = true;
  }
  M3SERVE_RETURN_IF_ERROR(WriteAtomically(root / kPointerFile, version + "\n"));
  M3SERVE_ASSIGN_OR_RETURN(PublishReport cleaned, CleanUp(root_path, options));
  report.removed = std::move(cleaned.removed);
  report.kept = std::move(cleaned.kept);
  return report;
}

absl::StatusOr<PublishReport> CleanUp(const std::string& root_path, const PublishOptions& options) {
  const fs::path root(root_path);
  PublishReport report;
  M3SERVE_ASSIGN_OR_RETURN(report.version, ReadPointer(root));
  std::error_code ec;
  // Without a current version there is nothing to measure "not needed" against.
  if (report.version.empty() || !fs::is_directory(root / kVersionsDir / report.version, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        root_path, report.version.empty() ? absl::StrCat(" has no ", kPointerFile)
                                          : absl::StrCat("/", kPointerFile, " names version ", report.version,
                                                         ", which is missing"),
        ": nothing was removed; publish a version first"));
  }
  const absl::Time now = absl::Now();
  // Live leases: version -> holders. Dead ones (a server that was killed) go.
  std::map<std::string, std::vector<std::string>> leased;
  for (const auto& e : fs::directory_iterator(root / kLeasesDir, ec)) {
    const std::string holder = e.path().filename().string();
    if (absl::StartsWith(holder, ".")) continue;  // being written
    absl::StatusOr<absl::Time> at = ModifiedAt(e.path());
    if (!at.ok()) continue;  // removed meanwhile
    if (now - *at > options.lease_ttl) {
      fs::remove(e.path(), ec);
      continue;
    }
    std::ifstream f(e.path());
    std::string v;
    f >> v;
    leased[v].push_back(holder);
  }
  struct Candidate {
    std::string version;
    absl::Time at;
  };
  std::vector<Candidate> others;
  for (const auto& e : fs::directory_iterator(root / kVersionsDir, ec)) {
    const std::string name = e.path().filename().string();
    absl::StatusOr<absl::Time> at = ModifiedAt(e.path());
    if (!at.ok()) continue;
    if (absl::StartsWith(name, kTmpPrefix)) {
      if (now - *at > kLeftoverAge) fs::remove_all(e.path(), ec);
      continue;
    }
    if (name == report.version || !e.is_directory()) continue;
    if (auto it = leased.find(name); it != leased.end()) {
      report.kept.push_back(absl::StrCat(name, " (in use by ", absl::StrJoin(it->second, ", "), ")"));
      continue;
    }
    others.push_back({name, *at});
  }
  std::sort(others.begin(), others.end(), [](const Candidate& a, const Candidate& b) {
    return a.at != b.at ? a.at > b.at : a.version < b.version;
  });
  for (size_t i = 0; i < others.size(); ++i) {
    if (static_cast<int>(i) < options.keep) {
      report.kept.push_back(absl::StrCat(others[i].version, " (one of the ", options.keep, " newest)"));
      continue;
    }
    fs::remove_all(root / kVersionsDir / others[i].version, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("remove ", others[i].version, ": ", ec.message()));
    report.removed.push_back(others[i].version);
  }
  return report;
}

absl::StatusOr<Lease> Lease::Acquire(const std::string& root, const std::string& holder, const std::string& version) {
  if (holder.empty() || holder.front() == '.' ||
      !std::all_of(holder.begin(), holder.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      })) {
    return absl::InvalidArgumentError(absl::StrCat("lease holder '", absl::CHexEscape(holder),
                                                   "': use letters, digits, '-', '_' and '.'"));
  }
  const fs::path dir = fs::path(root) / kLeasesDir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  Lease lease;
  lease.path_ = (dir / holder).string();
  lease.version_ = version;
  M3SERVE_RETURN_IF_ERROR(WriteAtomically(lease.path_, version + "\n"));
  return lease;
}

Lease::Lease(Lease&& o) noexcept : path_(std::move(o.path_)), version_(std::move(o.version_)) { o.path_.clear(); }
Lease& Lease::operator=(Lease&& o) noexcept {
  if (this != &o) {
    // The old lease goes, unless the new one is that very file (the same holder).
    if (!path_.empty() && path_ != o.path_) ::unlink(path_.c_str());
    path_ = std::move(o.path_);
    version_ = std::move(o.version_);
    o.path_.clear();
  }
  return *this;
}
Lease::~Lease() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

absl::Status Lease::Refresh() {
  if (::utimensat(AT_FDCWD, path_.c_str(), nullptr, 0) == 0) return absl::OkStatus();
  if (errno == ENOENT) return WriteAtomically(path_, version_ + "\n");
  return Errno(absl::StrCat("refresh lease ", path_));
}

std::string DefaultLeaseHolder() {
  char host[256] = {0};
  if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') std::strcpy(host, "host");
  std::string h;
  for (const char* c = host; *c; ++c) h += absl::ascii_isalnum(static_cast<unsigned char>(*c)) || *c == '-' ? *c : '_';
  return absl::StrCat(h, "-", getpid());
}

}  // namespace m3serve::storage
