#include "server/stream_setup.h"

#include <algorithm>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace m3serve::server {

absl::Status SetUpStream(const v1::StreamRequest& req, const Dataset& dataset,
                         const RequestLimits& limits, const StreamCaller& caller,
                         const std::string& token_key, StreamSetup* out) {
  M3SERVE_RETURN_IF_ERROR(FromProto(req, limits, &out->settings));
  const StreamSettings& settings = out->settings;
  M3SERVE_ASSIGN_OR_RETURN(ResolvedSelection sel,
                           dataset.Resolve(settings.selection, caller.entitlement, caller.name));
  out->removed_by_policy = sel.removed_by_policy;
  M3SERVE_ASSIGN_OR_RETURN(std::vector<OrderComponent> components,
                           ResolveMixture(dataset, sel, settings.mixture, caller.entitlement, caller.name));
  std::set<std::string> licenses;
  for (const auto& c : components) {
    for (const auto& g : c.selection->groups) {
      if (const storage::TaskInfo* t = dataset.Task(g.task)) licenses.insert(t->license);
    }
  }
  out->licenses.assign(licenses.begin(), licenses.end());
  PlanParams params = settings.plan;
  if (settings.mixture.epoch_size) params.order.epoch_size = *settings.mixture.epoch_size;
  if (settings.mixture.stratified) {
    // The stratum defaults to the job's global batch (or the message batch).
    params.order.stratum = settings.mixture.stratum
                         ? settings.mixture.stratum
                         : (params.schedule ? uint64_t{params.world_size} * params.batch_size
                                            : settings.batch_size);
  }
  M3SERVE_ASSIGN_OR_RETURN(StreamPlan plan, StreamPlan::Create(std::move(components), params,
                                                               dataset.version(), token_key));
  const StreamPlan& p = out->plan.emplace(std::move(plan));
  if (!settings.plan_fingerprint.empty() && settings.plan_fingerprint != p.fingerprint()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "plan_fingerprint: the position was counted under plan ", settings.plan_fingerprint,
        ", but this request resolves to plan ", p.fingerprint(),
        " (the selection, mixture, order, seed or dataset version differ)"));
  }
  if (!settings.resume_token.empty()) {
    M3SERVE_ASSIGN_OR_RETURN(out->begin, p.Resume(settings.resume_token));
  } else {
    // At or past the end: an empty stream.
    out->begin = std::min(settings.start_position, p.shard_size());
  }
  out->end = p.shard_size();
  if (settings.limit > 0 && settings.limit < out->end - out->begin) {
    out->end = out->begin + settings.limit;
  }
  return absl::OkStatus();
}

void ToProto(const StreamSetup& setup, v1::PlanResponse* out) {
  const StreamPlan& p = *setup.plan;
  const EpochOrder& o = p.order();
  out->set_fingerprint(p.fingerprint());
  out->set_epoch_samples(o.size());
  out->set_view_instances(setup.end - setup.begin);
  out->set_stratum(o.params().stratum && o.components().size() > 1 ? o.params().stratum : 0);
  double total_weight = 0;
  for (const auto& c : o.components()) total_weight += c.weight;
  for (size_t i = 0; i < o.components().size(); ++i) {
    const OrderComponent& c = o.components()[i];
    v1::PlanComponent* pc = out->add_components();
    pc->set_key(c.key);
    pc->set_instances(c.selection->total());
    pc->set_weight(c.weight);
    pc->set_share(c.weight / total_weight);
    pc->set_samples(o.quota(i));
    pc->set_passes(c.selection->total() ? static_cast<double>(o.quota(i)) / c.selection->total() : 0);
  }
  for (const auto& t : setup.removed_by_policy) out->add_removed_by_policy(t);
}

}  // namespace m3serve::server
