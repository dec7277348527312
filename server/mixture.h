// File: server/mixture.h
//
// Task mixtures: which components an epoch is drawn from, and with what
// weight. A mixture is resolved on top of a request's selection (after the
// server policy and the caller's entitlement): a component is the part of the
// selection of one task ("coco") or one task and language ("coco:en"); "*"
// stands for every task of the selection no other key names, one component
// each. Weights are relative shares of the epoch; a temperature T instead
// gives each component the weight size^(1/T) (T = 1: natural proportions,
// large T: uniform). Every rule a mixture must follow is checked here, once.
#ifndef M3SERVE_SERVER_MIXTURE_H_
#define M3SERVE_SERVER_MIXTURE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/dataset.h"
#include "server/epoch_order.h"

namespace m3serve::server {

// A request's mixture, as sent; empty: the selection is one component.
struct MixtureSpec {
  // (key, weight) in request order.
  std::vector<std::pair<std::string, std::optional<double>>> components;
  std::optional<double> temperature;
  std::optional<uint64_t> epoch_size;  // absent: the natural size
  bool stratified = false;
  uint64_t stratum = 0;  // stratified block size; 0: the stream's global batch

  bool mixes() const { return !components.empty() || temperature.has_value(); }
};

// The components of `selection` under `spec`, sorted by key; for a spec that
// does not mix, the selection itself as the one component (key "").
//   InvalidArgument naming mixture.<field>: a weight missing or not finite
//     and > 0, weights together with a temperature, a temperature not finite
//     and > 0, an epoch size of 0,
//     an unknown task or language, a key that matches no instance of the
//     selection, a key given twice or overlapping another.
//   PermissionDenied: a task the policy or the caller's entitlement excludes.
absl::StatusOr<std::vector<OrderComponent>> ResolveMixture(const Dataset& dataset,
                                                           const ResolvedSelection& selection,
                                                           const MixtureSpec& spec,
                                                           const LicensePolicy* entitlement,
                                                           const std::string& who);

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_MIXTURE_H_
