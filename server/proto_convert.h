// File: server/proto_convert.h
//
// The one place where API messages and server types meet: request validation
// (INVALID_ARGUMENT naming the field), message -> domain types, domain types
// -> messages, and absl::Status -> grpc::Status.
#ifndef M3SERVE_SERVER_PROTO_CONVERT_H_
#define M3SERVE_SERVER_PROTO_CONVERT_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "m3serve/v1/dataset.pb.h"
#include "server/attribution.h"
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
  // Largest decoded image (output pixels) a request may ask for, by target
  // size or, for original-size decodes, by the stored image's size.
  uint64_t max_decoded_pixels = uint64_t{1} << 24;
  // Most ids in one GetInstances call.
  int max_get_ids = 1024;

  // The largest message the server sends: a single instance above the
  // request's byte cap goes alone, up to this.
  uint64_t max_send_bytes() const { return max_message_bytes + (1u << 20); }
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
// Also refuses, before any work, image options no instance could be served
// with: more than max_decoded_pixels per image, or one instance's decoded
// images (at least one, at most max_images_per_instance) above max_send_bytes.
absl::Status FromProto(const v1::ImageOptions& in, const RequestLimits& limits, BuildOptions* out);
absl::Status FromProto(const v1::Mixture& in, MixtureSpec* out);
// The instruction mode of a request (`field` names it in errors).
absl::Status FromProto(v1::InstructionMode in, BuildOptions* out);

// A validated GetInstances request: ids parsed (canonical ids only), image
// and instruction options, and refused up front when the ids cannot fit one
// response (each instance decodes to at least one image of the target size).
struct GetSettings {
  std::vector<std::pair<storage::GroupKey, uint64_t>> keys;
  BuildOptions build;
  std::optional<SelectionSpec> selection;  // ids must be in it
};
absl::Status FromProto(const v1::GetInstancesRequest& in, const RequestLimits& limits, GetSettings* out);
absl::Status FromProto(const v1::StreamRequest& in, const RequestLimits& limits, StreamSettings* out);

// The catalog as `entitlement` (may be null) sees it, on top of the policy.
// Errors from counting its images (Dataset::UniqueImages).
absl::Status ToProto(const Dataset& dataset, const LicensePolicy* entitlement, v1::Catalog* out);
// One task of the catalog (`name`, its metadata, instances after the policy).
void ToProto(const Dataset& dataset, const std::string& name, const storage::TaskInfo& task, v1::TaskInfo* out);
void ToProto(const ResolvedSelection& selection, v1::CountResponse* out);
v1::CommercialUse ToProto(storage::CommercialUse c);
// The report format of an Attribution request (`format`).
absl::Status FromProto(v1::ReportFormat in, ReportFormat* out);
// The report, with its rendering in `format`.
void ToProto(const AttributionReport& report, ReportFormat format, v1::AttributionResponse* out);
v1::Modality ToProto(storage::Modality m);

// Same code (absl and gRPC codes match by number), same message.
grpc::Status ToGrpcStatus(const absl::Status& s);
// "NOT_FOUND", "INVALID_ARGUMENT", ...
std::string CodeName(absl::StatusCode code);

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_PROTO_CONVERT_H_
