#include "server/stream_plan.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/hash.h"
#include "common/status_macros.h"

namespace m3serve::server {
namespace {

constexpr char kMagic[4] = {'M', '3', 'T', '2'};
constexpr size_t kMacBytes = 16;
// magic + version + components + shuffled + seed + epoch
//   + view (schedule flag, a, b, batch, workers, worker, start, drop) + next
constexpr size_t kHeadBytes = 4 + 16 + 16 + 1 + 8 + 8;
constexpr size_t kViewBytes = 1 + 4 + 4 + 4 + 4 + 4 + 8 + 1;
constexpr size_t kPayloadBytes = kHeadBytes + kViewBytes + 8;

// Bounds that keep view arithmetic in 64 bits.
constexpr uint32_t kMaxWorld = 1u << 16;
constexpr uint32_t kMaxRankBatch = 1u << 20;
constexpr uint32_t kMaxWorkers = 1u << 10;

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

// The view fields as the token stores them.
std::string EncodeView(const PlanParams& p) {
  std::string v;
  v.push_back(p.schedule ? 1 : 0);
  Put32(&v, p.schedule ? p.world_size : p.shard_index);
  Put32(&v, p.schedule ? p.rank : p.shard_count);
  Put32(&v, p.schedule ? p.batch_size : 0);
  Put32(&v, p.schedule ? p.num_workers : 0);
  Put32(&v, p.schedule ? p.worker : 0);
  Put64(&v, p.schedule ? p.start_sample : 0);
  v.push_back(p.drop_remainder ? 1 : 0);
  return v;
}

absl::Status CheckView(const PlanParams& p) {
  if (!p.schedule) {
    if (p.shard_count == 0) return absl::InvalidArgumentError("sharding.count must be at least 1");
    if (p.shard_index >= p.shard_count) {
      return absl::InvalidArgumentError(absl::StrCat("sharding.index (", p.shard_index,
                                                     ") must be less than sharding.count (",
                                                     p.shard_count, ")"));
    }
    return absl::OkStatus();
  }
  auto range = [](const char* field, uint64_t v, uint64_t lo, uint64_t hi) -> absl::Status {
    if (v < lo || v > hi) {
      return absl::InvalidArgumentError(
          absl::StrCat("schedule.", field, " must be between ", lo, " and ", hi, ", got ", v));
    }
    return absl::OkStatus();
  };
  M3SERVE_RETURN_IF_ERROR(range("world_size", p.world_size, 1, kMaxWorld));
  M3SERVE_RETURN_IF_ERROR(range("rank", p.rank, 0, p.world_size - 1));
  M3SERVE_RETURN_IF_ERROR(range("batch_size", p.batch_size, 1, kMaxRankBatch));
  M3SERVE_RETURN_IF_ERROR(range("num_workers", p.num_workers, 1, kMaxWorkers));
  M3SERVE_RETURN_IF_ERROR(range("worker", p.worker, 0, p.num_workers - 1));
  return absl::OkStatus();
}

}  // namespace

StreamPlan::StreamPlan(std::shared_ptr<const EpochOrder> order, const PlanParams& params, std::string version,
                       std::string key)
    : order_(std::move(order)), params_(params), version_(std::move(version)), key_(std::move(key)) {
  StreamingHash h;
  h.AddRecord(version_);
  h.AddRecord(order_->digest().Raw());
  fingerprint_ = h.Finish().Hex();
  const uint64_t n = order_->size();
  const bool drop = params.drop_remainder;
  if (!params.schedule) {
    const uint64_t c = params.shard_count, i = params.shard_index;
    size_ = drop ? n / c : (n > i ? (n - i + c - 1) / c : 0);
    return;
  }
  const uint64_t w = params.world_size, r = params.rank, b = params.batch_size;
  const uint64_t k = params.num_workers, me = params.worker, step = w * b;
  const uint64_t remaining = n > params.start_sample ? n - params.start_sample : 0;
  const uint64_t full = remaining / step, tail = remaining % step;
  size_ = full > me ? (full - me + k - 1) / k * b : 0;
  if (!drop && tail > r * b && full % k == me) size_ += std::min(b, tail - r * b);
}

absl::StatusOr<StreamPlan> StreamPlan::Create(std::vector<OrderComponent> components, const PlanParams& params,
                                              std::string dataset_version, std::string token_key) {
  M3SERVE_RETURN_IF_ERROR(CheckView(params));
  M3SERVE_ASSIGN_OR_RETURN(std::shared_ptr<const EpochOrder> order,
                           EpochOrder::Create(std::move(components), params.order));
  return StreamPlan(std::move(order), params, std::move(dataset_version), std::move(token_key));
}

absl::StatusOr<StreamPlan> StreamPlan::Create(std::shared_ptr<const ResolvedSelection> selection,
                                              const PlanParams& params, std::string dataset_version,
                                              std::string token_key) {
  std::vector<OrderComponent> one{{"", std::move(selection), 1.0}};
  return Create(std::move(one), params, std::move(dataset_version), std::move(token_key));
}

uint64_t StreamPlan::Sample(uint64_t j) const {
  if (!params_.schedule) return j * params_.shard_count + params_.shard_index;
  const uint64_t b = params_.batch_size;
  const uint64_t step = (j / b) * params_.num_workers + params_.worker;
  return params_.start_sample + step * params_.world_size * b + params_.rank * b + j % b;
}

StreamPlan::Located StreamPlan::Cursor::At(uint64_t j) {
  Located out;
  out.sample = plan_->Sample(j);
  EpochOrder::Sample s = order_.At(out.sample);
  const ResolvedSelection& sel = *plan_->order().components()[s.component].selection;
  auto [g, ordinal] = sel.Locate(s.position);
  out.group = &sel.groups[g];
  out.ordinal = ordinal;
  out.component = s.component;
  return out;
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
  auto version = Hash128::FromHex(version_);
  t.append(version ? std::string(version->Raw()) : std::string(16, '\0'));
  t.append(order_->components_digest().Raw().data(), 16);
  t.push_back(params_.order.shuffled ? 1 : 0);
  Put64(&t, params_.order.seed);
  Put64(&t, params_.order.epoch);
  t += EncodeView(params_);
  Put64(&t, next);
  t += Mac(t);
  return t;
}

std::string DescribeView(const PlanParams& p) {
  const char* drop = p.drop_remainder ? "true" : "false";
  if (!p.schedule) return absl::StrFormat("sharding %d of %d (drop_remainder %s)", p.shard_index, p.shard_count, drop);
  return absl::StrFormat("schedule rank %d of world %d, batch %d, worker %d of %d, start sample %d (drop_remainder %s)",
                         p.rank, p.world_size, p.batch_size, p.worker, p.num_workers, p.start_sample, drop);
}

std::string StreamPlan::ViewText(const std::string& view) const {
  // The inverse of EncodeView.
  size_t pos = 0;
  PlanParams p;
  p.schedule = Get(view, &pos, 1) != 0;
  const uint32_t a = static_cast<uint32_t>(Get(view, &pos, 4)), b = static_cast<uint32_t>(Get(view, &pos, 4));
  p.batch_size = static_cast<uint32_t>(Get(view, &pos, 4));
  p.num_workers = static_cast<uint32_t>(Get(view, &pos, 4));
  p.worker = static_cast<uint32_t>(Get(view, &pos, 4));
  p.start_sample = Get(view, &pos, 8);
  p.drop_remainder = Get(view, &pos, 1) != 0;
  if (p.schedule) {
    p.world_size = a;
    p.rank = b;
  } else {
    p.shard_index = a;
    p.shard_count = b;
  }
  return DescribeView(p);
}

absl::StatusOr<uint64_t> StreamPlan::Resume(absl::string_view token) const {
  if (token.size() != kPayloadBytes + kMacBytes || std::memcmp(token.data(), kMagic, 4) != 0) {
    return absl::InvalidArgumentError("resume_token is not an m3serve resume token of this API version");
  }
  absl::string_view payload = token.substr(0, kPayloadBytes);
  if (Mac(payload) != token.substr(kPayloadBytes)) {
    return absl::InvalidArgumentError(
        "resume_token is corrupt or was not issued by this deployment (authentication failed)");
  }
  size_t pos = 4;
  absl::string_view version = token.substr(pos, 16);
  pos += 16;
  absl::string_view components = token.substr(pos, 16);
  pos += 16;
  const bool shuffled = Get(token, &pos, 1) != 0;
  const uint64_t seed = Get(token, &pos, 8);
  const uint64_t epoch = Get(token, &pos, 8);
  const std::string view(token.substr(pos, kViewBytes));
  pos += kViewBytes;
  const uint64_t next = Get(token, &pos, 8);

  auto my_version = Hash128::FromHex(version_);
  if (!my_version || version != my_version->Raw()) {
    auto v = Hash128::FromRaw(version);
    return absl::InvalidArgumentError(absl::StrCat("resume_token was issued for dataset version ",
                                                   v ? v->Hex() : "?", "; this server serves version ",
                                                   version_));
  }
  if (components != order_->components_digest().Raw()) {
    return absl::InvalidArgumentError(
        "resume_token was issued for a different selection or mixture (tasks, splits, languages, "
        "licenses, weights, epoch size ... resolve to other components)");
  }
  if (view != EncodeView(params_)) {
    return absl::InvalidArgumentError(absl::StrCat("resume_token was issued for ", ViewText(view),
                                                   "; the request asks for ", ViewText(EncodeView(params_))));
  }
  if (shuffled != params_.order.shuffled || epoch != params_.order.epoch || (shuffled && seed != params_.order.seed)) {
    return absl::InvalidArgumentError(absl::StrCat("resume_token was issued for ", OrderText(shuffled, seed, epoch),
                                                   "; the request asks for ",
                                                   OrderText(params_.order.shuffled, params_.order.seed, params_.order.epoch)));
  }
  if (next > size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("resume_token position ", next, " is beyond the shard size ", size_));
  }
  return next;
}

}  // namespace m3serve::server
