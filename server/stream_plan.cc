#include "server/stream_plan.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/hash.h"

namespace m3serve::server {
namespace {

constexpr char kMagic[4] = {'M', '3', 'T', '1'};
constexpr size_t kMacBytes = 16;
// magic + digest + index + count + drop + shuffled + seed + epoch + version + next
constexpr size_t kPayloadBytes = 4 + 16 + 4 + 4 + 1 + 1 + 8 + 8 + 16 + 8;

void Put64(std::string* s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s->push_back(static_cast<char>(v >> (8 * i)));
}
void Put32(std::string* s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t Get(absl::string_view s, size_t* pos, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(s[(*pos)++]);
  return v;
}

std::string OrderText(bool shuffled, uint64_t seed, uint64_t epoch) {
  return shuffled ? absl::StrFormat("shuffled order, seed %d, epoch %d", seed, epoch)
                  : absl::StrFormat("sequential order, epoch %d", epoch);
}

}  // namespace

StreamPlan::StreamPlan(std::shared_ptr<const ResolvedSelection> selection, const PlanParams& params,
                       std::string version, std::string key)
    : selection_(std::move(selection)),
      params_(params),
      version_(std::move(version)),
      key_(std::move(key)),
      permutation_(selection_->total(),
                   Hash64(absl::StrCat(selection_->digest.Raw(), "|", params.seed, "|", params.epoch))) {
  const uint64_t n = selection_->total(), c = params.shard_count, i = params.shard_index;
  shard_size_ = params.drop_remainder ? n / c : (n > i ? (n - i + c - 1) / c : 0);
}

absl::StatusOr<StreamPlan> StreamPlan::Create(std::shared_ptr<const ResolvedSelection> selection,
                                              const PlanParams& params, std::string dataset_version,
                                              std::string token_key) {
  if (params.shard_count == 0) {
    return absl::InvalidArgumentError("sharding.count must be at least 1");
  }
  if (params.shard_index >= params.shard_count) {
    return absl::InvalidArgumentError(absl::StrCat("sharding.index (", params.shard_index,
                                                   ") must be less than sharding.count (",
                                                   params.shard_count, ")"));
  }
  return StreamPlan(std::move(selection), params, std::move(dataset_version), std::move(token_key));
}

uint64_t StreamPlan::SelectionPosition(uint64_t j) const {
  uint64_t slot = j * params_.shard_count + params_.shard_index;
  return params_.shuffled ? permutation_(slot) : slot;
}

std::string StreamPlan::Mac(absl::string_view payload) const {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), kMacBytes);
}

std::string StreamPlan::Token(uint64_t next) const {
  std::string t(kMagic, 4);
  t.append(selection_->digest.Raw().data(), 16);
  Put32(&t, params_.shard_index);
  Put32(&t, params_.shard_count);
  t.push_back(params_.drop_remainder ? 1 : 0);
  t.push_back(params_.shuffled ? 1 : 0);
  Put64(&t, params_.seed);
  Put64(&t, params_.epoch);
  auto version = Hash128::FromHex(version_);
  t.append(version ? std::string(version->Raw()) : std::string(16, '\0'));
  Put64(&t, next);
  t += Mac(t);
  return t;
}

absl::StatusOr<uint64_t> StreamPlan::Resume(absl::string_view token) const {
  if (token.size() != kPayloadBytes + kMacBytes || std::memcmp(token.data(), kMagic, 4) != 0) {
    return absl::InvalidArgumentError("resume_token is not an m3serve resume token");
  }
  absl::string_view payload = token.substr(0, kPayloadBytes);
  if (Mac(payload) != token.substr(kPayloadBytes)) {
    return absl::InvalidArgumentError(
        "resume_token is corrupt or was not issued by this deployment (authentication failed)");
  }
  size_t pos = 4;
  absl::string_view digest = token.substr(pos, 16);
  pos += 16;
  uint32_t index = static_cast<uint32_t>(Get(token, &pos, 4));
  uint32_t count = static_cast<uint32_t>(Get(token, &pos, 4));
  bool drop = Get(token, &pos, 1) != 0;
  bool shuffled = Get(token, &pos, 1) != 0;
  uint64_t seed = Get(token, &pos, 8);
  uint64_t epoch = Get(token, &pos, 8);
  absl::string_view version = token.substr(pos, 16);
  pos += 16;
  uint64_t next = Get(token, &pos, 8);

  auto my_version = Hash128::FromHex(version_);
  if (!my_version || version != my_version->Raw()) {
    auto v = Hash128::FromRaw(version);
    return absl::InvalidArgumentError(absl::StrCat(
        "resume_token was issued for dataset version ", v ? v->Hex() : "?",
        "; this server serves version ", version_));
  }
  if (digest != selection_->digest.Raw()) {
    return absl::InvalidArgumentError(
        "resume_token was issued for a different selection (tasks, splits, languages, licenses, "
        "... resolve to other groups)");
  }
  if (index != params_.shard_index || count != params_.shard_count ||
      drop != params_.drop_remainder) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "resume_token was issued for sharding %d of %d (drop_remainder %s); the request asks for "
        "%d of %d (drop_remainder %s)",
        index, count, drop ? "true" : "false", params_.shard_index, params_.shard_count,
        params_.drop_remainder ? "true" : "false"));
  }
  if (shuffled != params_.shuffled || epoch != params_.epoch ||
      (shuffled && seed != params_.seed)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resume_token was issued for ", OrderText(shuffled, seed, epoch), "; the request asks for ",
        OrderText(params_.shuffled, params_.seed, params_.epoch)));
  }
  if (next > shard_size_) {
    return absl::InvalidArgumentError(absl::StrCat("resume_token position ", next,
                                                   " is beyond the shard size ", shard_size_));
  }
  return next;
}

}  // namespace m3serve::server
