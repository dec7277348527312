#include "storage/types.h"

#include "absl/strings/str_cat.h"

namespace m3serve::storage {

const char* CommercialUseName(CommercialUse c) {
  switch (c) {
    case CommercialUse::kYes: return "yes";
    case CommercialUse::kNo: return "no";
    default: return "unknown";
  }
}

bool ParseCommercialUse(const std::string& s, CommercialUse* out) {
  if (s == "yes") *out = CommercialUse::kYes;
  else if (s == "no") *out = CommercialUse::kNo;
  else if (s == "unknown") *out = CommercialUse::kUnknown;
  else return false;
  return true;
}

const char* ModalityName(Modality m) { return m == Modality::kVideo ? "video" : "image"; }

bool ParseModality(const std::string& s, Modality* out) {
  if (s == "image") *out = Modality::kImage;
  else if (s == "video") *out = Modality::kVideo;
  else return false;
  return true;
}

std::string Instance::Id() const { return absl::StrCat(group.ToString(), "/", ordinal); }

uint64_t Catalog::TotalInstances() const {
  uint64_t n = 0;
  for (const auto& [k, v] : counts) n += v;
  return n;
}

}  // namespace m3serve::storage
