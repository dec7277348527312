// File: server/proto_convert.h
//
// The one place where API messages and server types meet: request validation
// (INVALID_ARGUMENT naming the field), message -> domain types, domain types
// -> messages, and absl::Status -> grpc::Status.
#ifndef M3SERVE_SERVER_PROTO_CONVERT_H_
#define M3SERVE_SERVER_PROTO_CONVERT_H_

#include <string>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "m3serve/v1/dataset.pb.h"
#include "server/dataset.h"
#include "server/instance_builder.h"
#include "server/mixture.h"
#include "server/stream_plan.h"

namespace m3serve::server {

// Server limits a request is checked against.
struct RequestLimits {
  uint32_t default_batch_size = 32;
  uint32_t max_batch_size = 4096;
  uint64_t default_message_bytes = 2u << 20;
  uint64_t max_message_bytes = 64u << 20;
  uint32_t max_image_side = 8192;
};

// A validated stream request.
struct StreamSettings {
  SelectionSpec selection;
  PlanParams plan;
  BuildOptions build;
  uint32_t batch_size = 32;
  uint64_t message_bytes = 2u << 20;
  std::string resume_token;
  uint64_t limit = 0;
  uint64_t start_position = 0;
  MixtureSpec mixture;
  std::string plan_fingerprint;
};

absl::Status FromProto(const v1::Selection& in, SelectionSpec* out);
absl::Status FromProto(const v1::ImageOptions& in, const RequestLimits& limits, BuildOptions* out);
absl::Status FromProto(const v1::Mixture& in, MixtureSpec* out);
absl::Status FromProto(const v1::StreamRequest& in, const RequestLimits& limits, StreamSettings* out);

// The catalog as `entitlement` (may be null) sees it, on top of the policy.
void ToProto(const Dataset& dataset, const LicensePolicy* entitlement, v1::Catalog* out);
void ToProto(const ResolvedSelection& selection, v1::CountResponse* out);
v1::CommercialUse ToProto(storage::CommercialUse c);
v1::Modality ToProto(storage::Modality m);

// Same code (absl and gRPC codes match by number), same message.
grpc::Status ToGrpcStatus(const absl::Status& s);
// "NOT_FOUND", "INVALID_ARGUMENT", ...
std::string CodeName(absl::StatusCode code);

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_PROTO_CONVERT_H_
