// File: common/base64.h
//
// Strict standard-alphabet base64 (RFC 4648 §4) with '=' padding. Images in
// M3IT rows are base64 strings; a `data:<mime>;base64,` prefix is accepted and
// skipped. Whitespace, URL-safe characters, missing or misplaced padding are
// errors that say what and where.
#ifndef M3SERVE_COMMON_BASE64_H_
#define M3SERVE_COMMON_BASE64_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace m3serve {

// Decode `in` into `*out` (replacing its content). Returns InvalidArgument
// naming the offending character and its offset.
absl::Status Base64Decode(absl::string_view in, std::string* out);

// Encode `in` with padding.
std::string Base64Encode(absl::string_view in);

}  // namespace m3serve

#endif  // M3SERVE_COMMON_BASE64_H_
