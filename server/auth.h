// File: server/auth.h
//
// Bearer-token authentication. A tokens file maps tokens to identities, each
// with its own license entitlement (applied on top of the server policy) and
// stream limit:
//   {"tokens": [{"token": "…", "identity": "team-a",
//                "allowed_licenses": ["CC BY 4.0"], "allowed_commercial_use": ["yes"],
//                "excluded_tasks": [], "max_streams": 8}]}
// Only SHA-256 digests of the tokens are kept; a presented token is compared
// with every entry in constant time. Tokens are never logged.
#ifndef M3SERVE_SERVER_AUTH_H_
#define M3SERVE_SERVER_AUTH_H_

#include <array>
#include <functional>
#include <optional>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/policy.h"

namespace m3serve::server {

struct Identity {
  std::string name;
  LicensePolicy entitlement;  // narrows the server policy for this identity
  int max_streams = 0;        // 0: only the server's limit applies
};

class TokenTable {
 public:
  // InvalidArgument naming the file and entry (tokens shorter than 16 bytes,
  // duplicate tokens or identities, unknown keys); NotFound when unreadable.
  static absl::StatusOr<TokenTable> Load(const std::string& path);

  // The identity of `token`, or nullptr. Time does not depend on which entry
  // matches or how much of a token matches.
  const Identity* Authenticate(absl::string_view token) const;
  size_t size() const { return entries_.size(); }
  // Visit every identity.
  void ForEachIdentity(const std::function<void(const Identity&)>& fn) const {
    for (const auto& e : entries_) fn(e.identity);
  }

 private:
  struct Entry {
    std::array<uint8_t, 32> digest;
    Identity identity;
  };
  std::vector<Entry> entries_;
};

// The token of an "authorization" metadata value "Bearer <token>"; empty when
// the value has another form.
absl::string_view BearerToken(absl::string_view authorization);

// The one authentication rule of every API (gRPC metadata, HTTP header): the
// identity of a call whose "authorization" value is `authorization` (nullopt:
// the call has none). nullptr when `tokens` is null (authentication off).
// Unauthenticated, naming what to send, when tokens are on and the call has
// no known bearer token.
absl::StatusOr<const Identity*> AuthenticateCall(const TokenTable* tokens,
                                                 std::optional<absl::string_view> authorization);

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_AUTH_H_
