#include "storage/key_codec.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace m3serve::storage {
namespace {

constexpr char kCatalogTask = 't';
constexpr char kCatalogCount = 'c';
constexpr char kCatalogPool = 'p';
constexpr char kCatalogImages = 'i';

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-' || c == '+';
}

}  // namespace

absl::Status ValidateName(absl::string_view name, absl::string_view what) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (name.size() > 128) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is longer than 128 bytes"));
  }
  for (char c : name) {
    if (!NameChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " '", name, "' has a character outside [A-Za-z0-9._+-]"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateGroup(const GroupKey& group) {
  absl::Status s = ValidateName(group.task, "task");
  if (s.ok()) s = ValidateName(group.split, "split");
  if (s.ok()) s = ValidateName(group.lang, "language");
  return s;
}

void AppendBigEndian64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint64_t ReadBigEndian64(absl::string_view b) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(b[i]);
  return v;
}

std::string GroupPrefix(const GroupKey& g) {
  std::string k;
  k.reserve(g.task.size() + g.split.size() + g.lang.size() + 3);
  absl::StrAppend(&k, g.task);
  k.push_back('\0');
  absl::StrAppend(&k, g.split);
  k.push_back('\0');
  absl::StrAppend(&k, g.lang);
  k.push_back('\0');
  return k;
}

std::string GroupUpperBound(const GroupKey& g) {
  std::string k = GroupPrefix(g);
  k.back() = '\1';
  return k;
}

std::string InstanceKey(const GroupKey& g, uint64_t ordinal) {
  std::string k = GroupPrefix(g);
  AppendBigEndian64(&k, ordinal);
  return k;
}

absl::Status ParseInstanceKey(absl::string_view key, GroupKey* group, uint64_t* ordinal) {
  if (key.size() < 8 + 6) return absl::InvalidArgumentError("instance key too short");
  absl::string_view names = key.substr(0, key.size() - 8);
  std::vector<absl::string_view> parts = absl::StrSplit(names, '\0');
  if (parts.size() != 4 || !parts[3].empty()) {
    return absl::InvalidArgumentError("instance key does not have task, split and language");
  }
  group->task = std::string(parts[0]);
  group->split = std::string(parts[1]);
  group->lang = std::string(parts[2]);
  *ordinal = ReadBigEndian64(key.substr(key.size() - 8));
  return ValidateGroup(*group);
}

std::string FormatInstanceId(const GroupKey& group, uint64_t ordinal) {
  return absl::StrCat(group.task, "/", group.split, "/", group.lang, "/", ordinal);
}

absl::Status ParseInstanceId(absl::string_view id, GroupKey* group, uint64_t* ordinal) {
  std::vector<absl::string_view> parts = absl::StrSplit(id, '/');
  if (parts.size() != 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        "instance id '", id, "' is not of the form task/split/lang/ordinal"));
  }
  group->task = std::string(parts[0]);
  group->split = std::string(parts[1]);
  group->lang = std::string(parts[2]);
  // Canonical decimal only: "01", " 1", "+1" would name instance 1 under
  // another id, so they are refused rather than read as it.
  const absl::string_view digits = parts[3];
  const bool canonical = !digits.empty() && digits.size() <= 20 &&
                         std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
                         (digits.size() == 1 || digits[0] != '0');
  if (!canonical || !absl::SimpleAtoi(digits, ordinal)) {
    return absl::InvalidArgumentError(absl::StrCat("instance id '", id, "': ordinal '", digits,
                                                   "' is not a canonical decimal number (digits, no sign, "
                                                   "no leading zero or space)"));
  }
  absl::Status s = ValidateGroup(*group);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("instance id '", id, "': ", s.message()));
  return absl::OkStatus();
}

std::string CatalogTaskKey(absl::string_view task) {
  std::string k(1, kCatalogTask);
  k.push_back('\0');
  absl::StrAppend(&k, task);
  return k;
}

std::string CatalogCountKey(const GroupKey& group) {
  std::string k(1, kCatalogCount);
  k.push_back('\0');
  absl::StrAppend(&k, GroupPrefix(group));
  return k;
}

std::string CatalogPoolKey(absl::string_view task, absl::string_view lang) {
  std::string k(1, kCatalogPool);
  k.push_back('\0');
  absl::StrAppend(&k, task);
  k.push_back('\0');
  absl::StrAppend(&k, lang);
  return k;
}

std::string CatalogImageCountKey() { return std::string(1, kCatalogImages); }

}  // namespace m3serve::storage
