// File: server/stream_setup.h
//
// Everything a Stream call decides before its first instance is read: the
// request is validated (proto_convert), its selection resolved against the
// catalog under the server policy and the caller's entitlement, the shard plan
// built, and the start position taken from the resume token or
// start_position. The service runs this per call; the stream-request fuzz
// target runs the same code on arbitrary request bytes.
#ifndef M3SERVE_SERVER_STREAM_SETUP_H_
#define M3SERVE_SERVER_STREAM_SETUP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "m3serve/v1/dataset.pb.h"
#include "server/dataset.h"
#include "server/proto_convert.h"
#include "server/stream_plan.h"

namespace m3serve::server {

// Who asks: the authenticated identity's entitlement and name, if any.
struct StreamCaller {
  const LicensePolicy* entitlement = nullptr;  // null: no token auth
  std::string name = "-";                     // identity, for messages
};

struct StreamSetup {
  // Filled as far as validation got, also when SetUpStream fails (for logs).
  StreamSettings settings;
  std::optional<StreamPlan> plan;
  std::vector<std::string> removed_by_policy;  // tasks the policy/entitlement removed
  std::vector<std::string> licenses;           // licenses of the selected tasks, sorted
  uint64_t begin = 0;                          // first shard position to serve
  uint64_t end = 0;                            // one past the last (limit applied)
};

// InvalidArgument naming the request field, NotFound for unknown names,
// PermissionDenied beyond the policy or entitlement, InvalidArgument for a
// resume token or plan_fingerprint that belongs to another plan. A start at or
// past the end of the view is an empty stream (begin == end).
absl::Status SetUpStream(const v1::StreamRequest& req, const Dataset& dataset,
                         const RequestLimits& limits, const StreamCaller& caller,
                         const std::string& token_key, StreamSetup* out);

// The plan preview of a set-up stream (the Plan call's answer).
void ToProto(const StreamSetup& setup, v1::PlanResponse* out);

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_STREAM_SETUP_H_
