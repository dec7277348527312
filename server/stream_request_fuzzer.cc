// Fuzz target: a Stream call's request, from wire bytes to the first shard
// position (server/stream_setup.h), as an anonymous caller and as an identity
// with a narrow entitlement. Every input must give OK or a clean error with a
// code the API documents; an accepted request must satisfy the plan's
// invariants, and a resume token the server did not issue is never accepted.
// Seeds: fuzz/corpus/stream_request_fuzzer (serialized StreamRequests).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include <google/protobuf/stubs/logging.h>

#include "common/hash.h"
#include "common/logging.h"
#include "m3serve/v1/dataset.pb.h"
#include "server/dataset.h"
#include "server/stream_setup.h"

namespace m3serve::server {
namespace {

constexpr char kTokenKey[] = "fuzz-token-key-0123456789";

storage::Catalog MakeCatalog() {
  using storage::CommercialUse;
  using storage::Modality;
  storage::Catalog c;
  auto task = [&](const char* name, const char* category, const char* license, CommercialUse cu,
                  Modality m, const char* lang) {
    c.tasks[name] = {name, category, name, license, cu, false, m, lang};
  };
  task("coco", "captioning", "CC BY 4.0", CommercialUse::kYes, Modality::kImage, "en");
  task("vqa-v2", "vqa", "CC BY 4.0", CommercialUse::kYes, Modality::kImage, "en");
  task("coco-cn", "captioning", "Non-commercial", CommercialUse::kNo, Modality::kImage, "zh");
  task("msrvtt", "captioning", "Unknown", CommercialUse::kUnknown, Modality::kVideo, "en");
  task("winoground", "reasoning", "Winoground", CommercialUse::kNo, Modality::kImage, "en");
  c.counts[{"coco", "train", "en"}] = 1000;
  c.counts[{"coco", "validation", "en"}] = 70;
  c.counts[{"vqa-v2", "train", "en"}] = 333;
  c.counts[{"vqa-v2", "train", "zh"}] = 101;
  c.counts[{"vqa-v2", "validation", "fr"}] = 1;
  c.counts[{"coco-cn", "test", "zh"}] = 17;
  c.counts[{"msrvtt", "train", "en"}] = 64;
  c.counts[{"winoground", "test", "en"}] = 0;
  c.fingerprint = ContentHash("fuzz-catalog");
  return c;
}

struct World {
  std::unique_ptr<Dataset> dataset;
  LicensePolicy entitlement;
  RequestLimits limits;
};

const World& GetWorld() {
  static const World* world = [] {
    // Parsing random bytes makes protobuf log every invalid UTF-8 string; a
    // failed parse is all this target needs to know.
    google::protobuf::SetLogHandler(nullptr);
    auto* w = new World;
    LicensePolicy policy;
    policy.excluded_tasks = {"winoground"};
    storage::Catalog catalog = MakeCatalog();
    // An image index like M3IT's: coco and vqa-v2 instances share one pool of
    // images across splits (so the evaluation guard has work to do), video
    // instances have frames of their own.
    storage::ImageIndex index;
    index.basis = catalog.fingerprint;
    uint32_t next_own = 200;
    for (const auto& [g, n] : catalog.counts) {
      storage::ImageRefs& refs = index.groups[g];
      for (uint64_t o = 0; o < n; ++o) {
        if (g.task == "msrvtt") {
          for (int f = 0; f < 3; ++f) refs.refs.push_back(next_own++);
        } else if (g.task == "coco" || g.task == "vqa-v2") {
          refs.refs.push_back(static_cast<uint32_t>((o * 7 + g.split.size()) % 200));
        } else {
          refs.refs.push_back(next_own++);
        }
        refs.offsets.push_back(static_cast<uint32_t>(refs.refs.size()));
      }
    }
    index.images = next_own;
    w->dataset = Dataset::FromCatalog(catalog, policy);
    w->dataset->SetImageIndex(std::make_shared<const storage::ImageIndex>(std::move(index)));
    w->entitlement.allowed_commercial_use = {storage::CommercialUse::kYes};
    return w;
  }();
  return *world;
}

void CheckAccepted(const StreamSetup& s, const RequestLimits& limits) {
  const StreamPlan& plan = *s.plan;
  const PlanParams& v = s.settings.plan;
  if (v.schedule) {
    M3_CHECK(v.world_size >= 1 && v.rank < v.world_size && v.batch_size >= 1);
    M3_CHECK(v.num_workers >= 1 && v.worker < v.num_workers);
  } else {
    M3_CHECK(v.shard_count >= 1 && v.shard_index < v.shard_count);
  }
  M3_CHECK(s.settings.batch_size >= 1 && s.settings.batch_size <= limits.max_batch_size);
  M3_CHECK(s.settings.message_bytes <= limits.max_message_bytes);
  M3_CHECK(s.begin <= s.end && s.end <= plan.shard_size());
  M3_CHECK(plan.shard_size() <= plan.epoch_samples());
  // A few positions of the view map into a component and round-trip tokens.
  for (uint64_t j : {s.begin, s.end, plan.shard_size() / 2, plan.shard_size()}) {
    if (j < plan.shard_size()) {
      M3_CHECK(plan.Sample(j) < plan.epoch_samples());
      const StreamPlan::Located at = plan.Locate(j);
      M3_CHECK(at.component < plan.order().components().size());
      const ResolvedSelection& sel = *plan.order().components()[at.component].selection;
      M3_CHECK(at.group >= sel.groups.data() && at.group < sel.groups.data() + sel.groups.size());
      const size_t group = static_cast<size_t>(at.group - sel.groups.data());
      // An ordinal of the group, and one the evaluation guard (if any) keeps.
      M3_CHECK(at.ordinal < GetWorld().dataset->catalog().counts.at(*at.group));
      M3_CHECK(sel.exclusions[group] == nullptr || !sel.exclusions[group]->Excludes(at.ordinal));
    }
    auto resumed = plan.Resume(plan.Token(j));
    M3_CHECK(resumed.ok() && *resumed == j) << resumed.status();
  }
  if (!s.settings.resume_token.empty()) {
    // Accepted only because it is exactly the token this plan issues.
    M3_CHECK(plan.Token(s.begin) == s.settings.resume_token) << "a forged resume token was accepted";
  }
}

void CheckRejected(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
      break;
    default:
      M3_CHECK(false) << "undocumented code for a bad request: " << status;
  }
  M3_CHECK(!status.message().empty());
}

}  // namespace
}  // namespace m3serve::server

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace m3serve::server;
  const World& world = GetWorld();
  m3serve::v1::StreamRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return 0;
  StreamCaller anonymous;
  StreamCaller narrow{&world.entitlement, "team-commercial"};
  for (const StreamCaller* caller : {&anonymous, &narrow}) {
    StreamSetup setup;
    absl::Status s = SetUpStream(req, *world.dataset, world.limits, *caller, kTokenKey, &setup);
    if (s.ok()) {
      CheckAccepted(setup, world.limits);
      for (const auto& c : setup.plan->order().components()) {
        for (const auto& g : c.selection->groups) {
          M3_CHECK(world.dataset->Admits(*world.dataset->Task(g.task), caller->entitlement))
              << "selected outside the policy or entitlement: " << g.ToString();
        }
      }
    } else {
      CheckRejected(s);
    }
  }
  return 0;
}
