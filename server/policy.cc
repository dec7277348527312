#include "server/policy.h"

#include <simdjson.h>

#include "absl/strings/str_cat.h"
#include "common/license.h"
#include "common/status_macros.h"

namespace m3serve::server {

bool LicensePolicy::Admits(const storage::TaskInfo& task) const {
  if (excluded_tasks.count(task.name)) return false;
  if (!LicenseAllowed(task.license)) return false;
  if (!allowed_commercial_use.empty() && !allowed_commercial_use.count(task.commercial_use)) {
    return false;
  }
  return true;
}

absl::StatusOr<LicensePolicy> LoadPolicy(const std::string& path) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  auto err = parser.load(path).get(doc);
  if (err == simdjson::IO_ERROR) return absl::NotFoundError(absl::StrCat("cannot read policy file ", path));
  if (err) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not valid JSON (", simdjson::error_message(err), ")"));
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj)) return absl::InvalidArgumentError(absl::StrCat(path, ": expected an object"));
  LicensePolicy p;
  for (auto field : obj) {
    std::string key(field.key);
    simdjson::dom::array arr;
    if (field.value.get_array().get(arr)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": '", key, "' must be a list of strings"));
    }
    for (simdjson::dom::element e : arr) {
      std::string_view sv;
      if (e.get_string().get(sv)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": '", key, "' must be a list of strings"));
      }
      std::string v(sv);
      if (key == "allowed_licenses") {
        M3SERVE_ASSIGN_OR_RETURN(std::string id, ParseLicense(v, absl::StrCat(path, ": 'allowed_licenses'")));
        p.allowed_licenses.insert(std::move(id));
      } else if (key == "excluded_tasks") {
        p.excluded_tasks.insert(v);
      } else if (key == "allowed_commercial_use") {
        storage::CommercialUse cu;
        if (!storage::ParseCommercialUse(v, &cu)) {
          return absl::InvalidArgumentError(absl::StrCat(
              path, ": 'allowed_commercial_use' entries must be yes, no or unknown, got '", v, "'"));
        }
        p.allowed_commercial_use.insert(cu);
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": unknown key '", key,
            "' (expected allowed_licenses, allowed_commercial_use, excluded_tasks)"));
      }
    }
  }
  return p;
}

}  // namespace m3serve::server
