// File: common/license.h
//
// Licenses as SPDX identifiers. M3IT's task metadata spells one license
// several ways ("CC BY 4.0", "CC By 4.0", "CC-BY 4.0"); every spelling, and the
// SPDX id itself, is one license here. Text is compared without regard to
// case, spaces, '-' and '_'. Licenses without an SPDX id use the SPDX
// "LicenseRef-" form: LicenseRef-Unknown (none stated), LicenseRef-Custom (the
// dataset's own terms), LicenseRef-NonCommercial (non-commercial terms without
// a named license). The list is closed: an unknown spelling is an error, never
// a new license.
#ifndef M3SERVE_COMMON_LICENSE_H_
#define M3SERVE_COMMON_LICENSE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace m3serve {

// The SPDX id of `text` (an id or a known spelling); nullopt when unknown.
std::optional<std::string> CanonicalLicense(absl::string_view text);

// The SPDX id of `text`, or InvalidArgument "<where>: '<text>' is not a known
// license (known: <ids>)".
absl::StatusOr<std::string> ParseLicense(absl::string_view text, absl::string_view where);

// Every known SPDX id, sorted.
std::vector<std::string> KnownLicenseIds();

}  // namespace m3serve

#endif  // M3SERVE_COMMON_LICENSE_H_
