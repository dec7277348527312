#include "common/license.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace m3serve {
namespace {

struct KnownLicense {
  const char* id;
  // Other spellings met in dataset metadata (M3IT's paper, Table 7).
  std::vector<const char*> spellings;
};

const std::vector<KnownLicense>& Known() {
  static const auto* known = new std::vector<KnownLicense>{
      {"CC0-1.0", {"CC0", "Public Domain Dedication"}},
      {"CC-BY-2.0", {}},
      {"CC-BY-3.0", {"CC By 3.0"}},
      {"CC-BY-4.0", {"CC BY 4.0", "CC-BY 4.0", "CC By 4.0"}},
      {"CC-BY-SA-3.0", {}},
      {"CC-BY-SA-4.0", {}},
      {"CC-BY-NC-2.0", {}},
      {"CC-BY-NC-4.0", {}},
      {"CC-BY-NC-SA-3.0", {}},
      // The paper writes "CC BY-NC-SA" without a version (ScienceQA: 4.0).
      {"CC-BY-NC-SA-4.0", {"CC BY-NC-SA"}},
      {"CC-BY-NC-ND-4.0", {}},
      {"Apache-2.0", {"Apache 2.0", "Apache License 2.0"}},
      {"MIT", {"MIT License"}},
      {"BSD-2-Clause", {}},
      {"BSD-3-Clause", {}},
      {"ODC-By-1.0", {}},
      {"ODbL-1.0", {}},
      {"LicenseRef-NonCommercial", {"Non-commercial", "Non commercial", "Research only"}},
      {"LicenseRef-Custom", {"Custom"}},
      {"LicenseRef-Unknown", {"Unknown", ""}},
  };
  return *known;
}

// Lower case, without spaces, '-' and '_'.
std::string Key(absl::string_view text) {
  std::string out;
  for (char c : absl::StripAsciiWhitespace(text)) {
    if (c == ' ' || c == '-' || c == '_' || c == '\t') continue;
    out.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// Key of every id and spelling -> id, built once.
const absl::flat_hash_map<std::string, std::string>& ByKey() {
  static const auto* by_key = [] {
    auto* m = new absl::flat_hash_map<std::string, std::string>();
    for (const KnownLicense& l : Known()) {
      m->emplace(Key(l.id), l.id);
      for (const char* s : l.spellings) m->emplace(Key(s), l.id);
    }
    return m;
  }();
  return *by_key;
}

}  // namespace

std::optional<std::string> CanonicalLicense(absl::string_view text) {
  const auto& by_key = ByKey();
  auto it = by_key.find(Key(text));
  if (it == by_key.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::string> ParseLicense(absl::string_view text, absl::string_view where) {
  if (auto id = CanonicalLicense(text)) return *id;
  return absl::InvalidArgumentError(absl::StrCat(where, ": '", text, "' is not a known license (known: ",
                                                 absl::StrJoin(KnownLicenseIds(), ", "), ")"));
}

std::vector<std::string> KnownLicenseIds() {
  std::vector<std::string> out;
  for (const KnownLicense& l : Known()) out.emplace_back(l.id);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace m3serve
