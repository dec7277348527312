// File: server/policy.h
//
// The operator's license policy: which licenses and commercial-use levels a
// server may serve, and which tasks it never serves. Requests can narrow it,
// never widen it.
#ifndef M3SERVE_SERVER_POLICY_H_
#define M3SERVE_SERVER_POLICY_H_

#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "storage/types.h"

namespace m3serve::server {

struct LicensePolicy {
  std::set<std::string> allowed_licenses;                  // SPDX ids (LoadPolicy); empty: any
  std::set<storage::CommercialUse> allowed_commercial_use;  // empty: any
  std::set<std::string> excluded_tasks;

  // True when the policy lets the server serve `task`.
  bool Admits(const storage::TaskInfo& task) const;
  // `license` is an SPDX id (common/license.h): task licenses are ids once the
  // Dataset holds them, and LoadPolicy / the tokens file turn every spelling
  // into its id, so this is a set lookup (GetInstances asks it per id).
  bool LicenseAllowed(const std::string& license) const {
    return allowed_licenses.empty() || allowed_licenses.count(license) > 0;
  }
};

// Read a policy file (JSON):
//   {"allowed_licenses": ["CC-BY-4.0", ...],   (SPDX ids or known spellings)
//    "allowed_commercial_use": ["yes", "unknown"],
//    "excluded_tasks": ["winoground"]}
// Every key is optional. InvalidArgument names the file and the key (and, for
// a license no known license has, lists the known SPDX ids);
// NotFound when the file cannot be read.
absl::StatusOr<LicensePolicy> LoadPolicy(const std::string& path);

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_POLICY_H_
