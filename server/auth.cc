#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <set>

#include <simdjson.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/license.h"

namespace m3serve::server {
namespace {

std::array<uint8_t, 32> Digest(absl::string_view token) {
  std::array<uint8_t, 32> d;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d.data());
  return d;
}

absl::Status Bad(const std::string& path, size_t i, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": tokens[", i, "]: ", what));
}

}  // namespace

absl::string_view BearerToken(absl::string_view authorization) {
  authorization = absl::StripAsciiWhitespace(authorization);
  if (authorization.size() < 7 || !absl::EqualsIgnoreCase(authorization.substr(0, 7), "bearer ")) return {};
  return absl::StripAsciiWhitespace(authorization.substr(7));
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& path) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  auto err = parser.load(path).get(doc);
  if (err == simdjson::IO_ERROR) return absl::NotFoundError(absl::StrCat("cannot read tokens file ", path));
  if (err) return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON (", simdjson::error_message(err), ")"));
  simdjson::dom::array arr;
  if (doc["tokens"].get_array().get(arr)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected {\"tokens\": [...]}"));
  }
  TokenTable t;
  std::set<std::string> identities;
  size_t i = 0;
  for (simdjson::dom::element e : arr) {
    simdjson::dom::object obj;
    if (e.get_object().get(obj)) return Bad(path, i, "not an object");
    Entry entry;
    std::string token;
    for (auto field : obj) {
      std::string key(field.key);
      std::string_view sv;
      if (key == "token" || key == "identity") {
        if (field.value.get_string().get(sv)) return Bad(path, i, absl::StrCat("'", key, "' must be a string"));
        (key == "token" ? token : entry.identity.name) = std::string(sv);
      } else if (key == "max_streams") {
        int64_t n;
        if (field.value.get_int64().get(n) || n < 0) return Bad(path, i, "'max_streams' must be a non-negative integer");
        entry.identity.max_streams = static_cast<int>(n);
      } else if (key == "allowed_licenses" || key == "allowed_commercial_use" || key == "excluded_tasks") {
        simdjson::dom::array list;
        if (field.value.get_array().get(list)) return Bad(path, i, absl::StrCat("'", key, "' must be a list of strings"));
        for (simdjson::dom::element v : list) {
          if (v.get_string().get(sv)) return Bad(path, i, absl::StrCat("'", key, "' must be a list of strings"));
          std::string s(sv);
          if (key == "allowed_licenses") {
            absl::StatusOr<std::string> id = ParseLicense(s, "'allowed_licenses'");
            if (!id.ok()) return Bad(path, i, id.status().message());
            entry.identity.entitlement.allowed_licenses.insert(*id);
          } else if (key == "excluded_tasks") {
            entry.identity.entitlement.excluded_tasks.insert(s);
          } else {
            storage::CommercialUse cu;
            if (!storage::ParseCommercialUse(s, &cu)) {
              return Bad(path, i, absl::StrCat("'allowed_commercial_use' entries must be yes, no or unknown, got '", s, "'"));
            }
            entry.identity.entitlement.allowed_commercial_use.insert(cu);
          }
        }
      } else {
        return Bad(path, i, absl::StrCat("unknown key '", key, "'"));
      }
    }
    if (token.size() < 16) return Bad(path, i, "'token' must have at least 16 characters");
    if (entry.identity.name.empty()) return Bad(path, i, "'identity' is required");
    if (!identities.insert(entry.identity.name).second) {
      return Bad(path, i, absl::StrCat("identity '", entry.identity.name, "' appears twice"));
    }
    entry.digest = Digest(token);
    if (t.Authenticate(token) != nullptr) return Bad(path, i, "the same token appears twice");
    t.entries_.push_back(std::move(entry));
    ++i;
  }
  return t;
}

const Identity* TokenTable::Authenticate(absl::string_view token) const {
  if (token.empty()) return nullptr;
  const auto d = Digest(token);
  const Identity* found = nullptr;
  for (const auto& e : entries_) {
    // Compare every entry, fully, whatever matched before.
    const bool match = CRYPTO_memcmp(d.data(), e.digest.data(), d.size()) == 0;
    if (match) found = &e.identity;
  }
  return found;
}

absl::StatusOr<const Identity*> AuthenticateCall(const TokenTable* tokens,
                                                 std::optional<absl::string_view> authorization) {
  if (tokens == nullptr) return nullptr;
  if (!authorization) {
    return absl::UnauthenticatedError("missing bearer token: send 'authorization: Bearer <token>'");
  }
  const Identity* identity = tokens->Authenticate(BearerToken(*authorization));
  if (identity == nullptr) return absl::UnauthenticatedError("unknown bearer token");
  return identity;
}

}  // namespace m3serve::server
