// File: server/attribution.h
//
// Who to credit for a stream, and under which terms: per source dataset of a
// selection (or of a mixture's epoch), its license (SPDX id and the paper's
// wording), commercial-use status, the tasks built on it, instances, distinct
// images and samples per epoch; rendered as text, JSON or Markdown for a model
// card or a legal review. No gRPC here.
#ifndef M3SERVE_SERVER_ATTRIBUTION_H_
#define M3SERVE_SERVER_ATTRIBUTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/dataset.h"
#include "server/epoch_order.h"

namespace m3serve::server {

struct SourceAttribution {
  std::string source_dataset;
  std::vector<std::string> tasks;  // sorted
  std::string license;             // SPDX id
  std::string license_text;
  storage::CommercialUse commercial_use = storage::CommercialUse::kUnknown;
  uint64_t instances = 0;
  uint64_t images = 0;   // distinct images of those instances
  uint64_t samples = 0;  // per epoch
};

struct AttributionReport {
  std::string dataset_version;
  std::string eval_set;  // the guard's evaluation set, "" without it
  std::vector<SourceAttribution> sources;  // by source dataset, then license
  uint64_t instances = 0;
  uint64_t images = 0;  // distinct over all sources
  uint64_t samples = 0;
  std::vector<std::string> removed_by_policy;
};

// The report of an epoch `order` (a plain selection: one component; a
// mixture: one component per task or task:language). A source's samples are
// its components' quotas; the one component of a plain selection splits its
// quota over the sources in proportion to their instances (largest
// remainders), which is exact when the epoch has its natural size.
// FailedPrecondition when the dataset has no image index (images are
// counted from it).
absl::StatusOr<AttributionReport> BuildAttribution(const Dataset& dataset, const EpochOrder& order);

enum class ReportFormat { kText, kJson, kMarkdown };
std::string RenderAttribution(const AttributionReport& report, ReportFormat format);

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_ATTRIBUTION_H_
