#include "server/instance_reader.h"

#include "absl/strings/str_cat.h"
#include "common/image_probe.h"
#include "storage/key_codec.h"

namespace m3serve::server {

void MemoryReader::Add(storage::Instance x) {
  absl::MutexLock lock(&mu_);
  InstanceKey key{x.group, x.ordinal};
  instances_[std::move(key)] = std::move(x);
}

Hash128 MemoryReader::AddImage(std::string bytes) {
  const Hash128 hash = ContentHash(bytes);
  storage::ImageMeta meta;
  meta.size = bytes.size();
  if (auto info = ProbeImage(bytes); info.ok()) {
    meta.format = info->format;
    meta.width = info->width;
    meta.height = info->height;
  }
  absl::MutexLock lock(&mu_);
  images_[hash] = {meta, std::move(bytes)};
  return hash;
}

void MemoryReader::Remove(const InstanceKey& key) {
  absl::MutexLock lock(&mu_);
  instances_.erase(key);
}

uint64_t MemoryReader::instance_reads() const {
  absl::MutexLock lock(&mu_);
  return instance_reads_;
}

std::vector<absl::StatusOr<storage::Instance>> MemoryReader::MultiGetInstances(
    const std::vector<InstanceKey>& keys) const {
  absl::MutexLock lock(&mu_);
  std::vector<absl::StatusOr<storage::Instance>> out;
  out.reserve(keys.size());
  for (const auto& key : keys) {
    ++instance_reads_;
    auto it = instances_.find(key);
    if (it == instances_.end()) {
      out.push_back(absl::NotFoundError(
          absl::StrCat("no instance ", storage::FormatInstanceId(key.first, key.second))));
    } else {
      out.push_back(it->second);
    }
  }
  return out;
}

absl::StatusOr<storage::ImageMeta> MemoryReader::GetImageMeta(const Hash128& hash) const {
  absl::MutexLock lock(&mu_);
  auto it = images_.find(hash);
  if (it == images_.end()) return absl::NotFoundError(absl::StrCat("no image ", hash.Hex()));
  return it->second.first;
}

absl::StatusOr<std::string> MemoryReader::GetImage(const Hash128& hash) const {
  absl::MutexLock lock(&mu_);
  auto it = images_.find(hash);
  if (it == images_.end()) return absl::NotFoundError(absl::StrCat("no image ", hash.Hex()));
  return it->second.second;
}

absl::Status MemoryReader::ForEachInstance(const std::function<bool(storage::Instance&&)>& fn) const {
  std::vector<storage::Instance> all;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, x] : instances_) all.push_back(x);
  }
  for (auto& x : all) {
    if (!fn(std::move(x))) break;
  }
  return absl::OkStatus();
}

}  // namespace m3serve::server
