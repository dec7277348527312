#include "server/stream_setup.h"

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
  std::set<std::string> licenses;
  for (const auto& g : sel.groups) {
    if (const storage::TaskInfo* t = dataset.Task(g.task)) licenses.insert(t->license);
  }
  out->licenses.assign(licenses.begin(), licenses.end());
  M3SERVE_ASSIGN_OR_RETURN(
      StreamPlan plan, StreamPlan::Create(std::make_shared<const ResolvedSelection>(std::move(sel)),
                                          settings.plan, dataset.version(), token_key));
  const StreamPlan& p = out->plan.emplace(std::move(plan));
  if (!settings.resume_token.empty()) {
    M3SERVE_ASSIGN_OR_RETURN(out->begin, p.Resume(settings.resume_token));
  } else if (settings.start_position > p.shard_size()) {
    return absl::InvalidArgumentError(absl::StrCat("start_position ", settings.start_position,
                                                   " is beyond the shard size ", p.shard_size()));
  } else {
    out->begin = settings.start_position;
  }
  out->end = p.shard_size();
  if (settings.limit > 0 && settings.limit < out->end - out->begin) {
    out->end = out->begin + settings.limit;
  }
  return absl::OkStatus();
}

}  // namespace m3serve::server
