#include "server/epoch_order.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "server/permutation.h"

namespace m3serve::server {
namespace {

// Hamilton (largest remainder) apportionment of `seats` by `weights`: every
// result is floor or ceil of its exact share; ties go to the lower index.
std::vector<uint64_t> Apportion(uint64_t seats, const std::vector<double>& weights) {
  long double total = 0;
  for (double w : weights) total += w;
  std::vector<uint64_t> out(weights.size());
  std::vector<long double> rem(weights.size());
  uint64_t given = 0;
  for (size_t c = 0; c < weights.size(); ++c) {
    const long double ideal = static_cast<long double>(seats) * weights[c] / total;
    out[c] = std::min<uint64_t>(seats, static_cast<uint64_t>(std::floor(ideal)));
    rem[c] = ideal - static_cast<long double>(out[c]);
    given += out[c];
  }
  std::vector<size_t> idx(weights.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return rem[a] > rem[b]; });
  // Rounding can leave the floors off by a seat either way; settle it here.
  for (size_t k = 0; given < seats; k = (k + 1) % idx.size(), ++given) ++out[idx[k]];
  for (size_t k = idx.size(); given > seats;) {
    k = (k == 0 ? idx.size() : k) - 1;
    if (out[idx[k]] > 0) --out[idx[k]], --given;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const EpochOrder>> EpochOrder::Create(std::vector<OrderComponent> components,
                                                                      const OrderParams& params) {
  if (components.empty()) return absl::InvalidArgumentError("the epoch has no component");
  uint64_t natural = 0;
  std::vector<double> weights;
  for (const auto& c : components) {
    if (c.selection == nullptr) return absl::InvalidArgumentError("an epoch component has no selection");
    if (c.selection->total() == 0 && (components.size() > 1 || params.epoch_size > 0)) {
      // (A plain empty selection is an empty epoch.)
      return absl::InvalidArgumentError(
          c.key.empty() ? std::string("mixture.epoch_size: the selection matches no instance")
                        : absl::StrCat("mixture component '", c.key, "' has no instance"));
    }
    if (!std::isfinite(c.weight) || c.weight <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("mixture component '", c.key, "': weight must be finite and > 0, got ", c.weight));
    }
    natural += c.selection->total();
    weights.push_back(c.weight);
  }
  const uint64_t size = params.epoch_size ? params.epoch_size : natural;
  if (size > kMaxEpochSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("mixture.epoch_size: at most ", kMaxEpochSize, " samples, got ", size));
  }
  if (params.stratum > 0 && components.size() > 1 && size > 0) {
    const uint64_t blocks = (size + params.stratum - 1) / params.stratum;
    if (blocks > kMaxStrataWork / components.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mixture.stratum: ", params.stratum, " is too small for an epoch of ", size, " samples and ",
          components.size(), " components (at most ", kMaxStrataWork, " blocks x components; use at least ",
          (size * components.size() + kMaxStrataWork - 1) / kMaxStrataWork, ")"));
    }
  }
  std::shared_ptr<EpochOrder> o(new EpochOrder());
  o->components_ = std::move(components);
  o->params_ = params;
  o->size_ = size;
  o->quota_ = Apportion(size, weights);
  if (params.stratum > 0 && o->components_.size() > 1 && size > 0) o->BuildStrata();
  o->quota_prefix_.assign(1, 0);
  for (uint64_t q : o->quota_) o->quota_prefix_.push_back(o->quota_prefix_.back() + q);

  StreamingHash h;
  h.AddRecord("m3serve epoch order v1");
  for (size_t c = 0; c < o->components_.size(); ++c) {
    h.AddRecord(o->components_[c].key);
    h.AddRecord(o->components_[c].selection->digest.Raw());
    h.AddRecord(absl::StrCat(o->quota_[c]));
  }
  h.AddRecord(absl::StrCat("stratum ", o->blocks_ ? o->params_.stratum : 0));
  o->components_digest_ = h.Finish();
  StreamingHash full;
  full.AddRecord(o->components_digest_.Raw());
  full.AddRecord(absl::StrCat(params.shuffled ? "shuffled" : "sequential", "|", params.shuffled ? params.seed : 0));
  o->digest_ = full.Finish();
  o->global_key_ = Hash64(absl::StrCat(o->digest_.Raw(), "|global|", params.seed, "|", params.epoch));
  if (params.shuffled && o->components_.size() > 1 && o->blocks_ == 0) {
    o->global_order_.emplace(o->size_, o->global_key_);
  }
  return std::shared_ptr<const EpochOrder>(std::move(o));
}

uint64_t EpochOrder::BlockSize(uint64_t b) const {
  return b + 1 < blocks_ ? params_.stratum : size_ - (blocks_ - 1) * params_.stratum;
}

void EpochOrder::BuildStrata() {
  const uint64_t s = std::min(params_.stratum, size_);
  const size_t m = components_.size();
  blocks_ = (size_ + s - 1) / s;
  params_.stratum = s;
  base_.resize(m);
  rate_.resize(m);
  extra_seats_ = s;
  for (size_t c = 0; c < m; ++c) {
    // Exact shares q_c / E: s * q_c = base * E + rate.
    base_[c] = s * quota_[c] / size_;
    rate_[c] = static_cast<int64_t>(s * quota_[c] % size_);
    extra_seats_ -= base_[c];
  }
  // One pass over the whole blocks, keeping a checkpoint every kCheckpointBlocks.
  std::vector<uint64_t> extras(m, 0);
  std::vector<int64_t> deficit(m, 0);
  const uint64_t whole = size_ % s == 0 ? blocks_ : blocks_ - 1;
  for (uint64_t b = 0; b < whole; ++b) {
    if (b % kCheckpointBlocks == 0) checkpoints_.push_back(extras);
    GiveExtras(&deficit, &extras);
  }
  if (whole % kCheckpointBlocks == 0) checkpoints_.push_back(extras);
  // The epoch's quota of each component is what the blocks give it.
  std::vector<uint64_t> before(m);
  for (size_t c = 0; c < m; ++c) before[c] = whole * base_[c] + extras[c];
  if (whole < blocks_) {
    // The last, partial block: its own seats by the same rule, from the deficits reached.
    const uint64_t last = BlockSize(blocks_ - 1);
    uint64_t given = 0;
    std::vector<int64_t> key(m);
    for (size_t c = 0; c < m; ++c) {
      const uint64_t seats = last * quota_[c] / size_;
      before[c] += seats;
      given += seats;
      key[c] = deficit[c] + static_cast<int64_t>(last * quota_[c] % size_);
    }
    std::vector<size_t> idx(m);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return key[a] > key[b]; });
    for (size_t k = 0; given < last; ++k, ++given) ++before[idx[k % m]];
  }
  quota_ = before;
}

void EpochOrder::GiveExtras(std::vector<int64_t>* deficit, std::vector<uint64_t>* extras) const {
  const size_t m = components_.size();
  for (size_t c = 0; c < m; ++c) (*deficit)[c] += rate_[c];
  if (extra_seats_ == 0) return;
  thread_local std::vector<size_t> idx;  // scratch: no allocation per block
  idx.resize(m);
  std::iota(idx.begin(), idx.end(), 0);
  auto before = [&](size_t a, size_t b) {
    return (*deficit)[a] != (*deficit)[b] ? (*deficit)[a] > (*deficit)[b] : a < b;
  };
  std::nth_element(idx.begin(), idx.begin() + static_cast<ptrdiff_t>(extra_seats_ - 1), idx.end(), before);
  for (uint64_t k = 0; k < extra_seats_; ++k) {
    (*deficit)[idx[k]] -= static_cast<int64_t>(size_);
    ++(*extras)[idx[k]];
  }
}

void EpochOrder::ExtrasAfter(uint64_t blocks, std::vector<uint64_t>* extras) const {
  const uint64_t k = std::min<uint64_t>(blocks / kCheckpointBlocks, checkpoints_.size() - 1);
  *extras = checkpoints_[k];
  const size_t m = components_.size();
  std::vector<int64_t> deficit(m);
  const uint64_t from = k * kCheckpointBlocks;
  for (size_t c = 0; c < m; ++c) {
    deficit[c] = static_cast<int64_t>(from) * rate_[c] - static_cast<int64_t>(size_ * (*extras)[c]);
  }
  for (uint64_t b = from; b < blocks; ++b) GiveExtras(&deficit, extras);
}

void EpochOrder::Cursor::Seek(uint64_t block) {
  const EpochOrder& o = *order_;
  const size_t m = o.components_.size();
  const uint64_t whole = o.size_ % o.params_.stratum == 0 ? o.blocks_ : o.blocks_ - 1;
  std::vector<uint64_t> extras;
  if (block_ != UINT64_MAX && block == block_ + 1) {
    for (size_t c = 0; c < m; ++c) before_[c] += in_[c];
  } else {
    o.ExtrasAfter(std::min(block, whole), &extras);
    before_.assign(m, 0);
    for (size_t c = 0; c < m; ++c) before_[c] = std::min(block, whole) * o.base_[c] + extras[c];
  }
  block_ = block;
  block_order_.reset();
  if (o.params_.shuffled) block_order_.emplace(o.BlockSize(block), Hash64(absl::StrCat(o.global_key_, "|", block)));
  in_.assign(m, 0);
  if (block < whole) {
    // This block's seats: the base, plus an extra for the components the greedy picks.
    std::vector<int64_t> deficit(m);
    std::vector<uint64_t> x(m, 0);
    for (size_t c = 0; c < m; ++c) {
      const uint64_t xc = before_[c] - block * o.base_[c];
      deficit[c] = static_cast<int64_t>(block) * o.rate_[c] - static_cast<int64_t>(o.size_ * xc);
    }
    o.GiveExtras(&deficit, &x);
    for (size_t c = 0; c < m; ++c) in_[c] = o.base_[c] + x[c];
  } else {
    for (size_t c = 0; c < m; ++c) in_[c] = o.quota_[c] - before_[c];
  }
}

EpochOrder::Sample EpochOrder::Cursor::At(uint64_t g) {
  const EpochOrder& o = *order_;
  const size_t m = o.components_.size();
  Sample s;
  uint64_t j;
  if (m == 1) {
    j = g;
  } else if (o.blocks_ == 0) {
    const uint64_t p = o.global_order_ ? (*o.global_order_)(g) : g;
    auto it = std::upper_bound(o.quota_prefix_.begin(), o.quota_prefix_.end(), p);
    s.component = static_cast<size_t>(it - o.quota_prefix_.begin()) - 1;
    j = p - o.quota_prefix_[s.component];
  } else {
    const uint64_t b = g / o.params_.stratum;
    if (b != block_) Seek(b);
    uint64_t slot = g - b * o.params_.stratum;
    if (block_order_) slot = (*block_order_)(slot);
    size_t c = 0;
    while (slot >= in_[c]) slot -= in_[c++];
    s.component = c;
    j = before_[c] + slot;
  }
  s.position = ComponentPosition(s.component, j);
  return s;
}

uint64_t EpochOrder::Cursor::ComponentPosition(size_t c, uint64_t j) {
  const EpochOrder& o = *order_;
  const uint64_t n = o.components_[c].selection->total();
  const uint64_t t = o.params_.epoch * o.quota_[c] + j;
  const uint64_t pass = t / n, index = t % n;
  if (!o.params_.shuffled) return index;
  if (passes_.empty()) passes_.resize(o.components_.size());
  auto& cached = passes_[c];
  if (!cached || cached->first != pass) cached.emplace(pass, Permutation(n, o.PassKey(c, pass)));
  return cached->second(index);
}

uint64_t EpochOrder::PassKey(size_t c, uint64_t pass) const {
  // For a plain selection whose quota is its size, pass == epoch: the key of
  // the per-epoch permutation of earlier releases.
  return Hash64(absl::StrCat(components_[c].selection->digest.Raw(), "|", params_.seed, "|", pass));
}

}  // namespace m3serve::server
