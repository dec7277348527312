#include "server/proto_convert.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "storage/key_codec.h"

namespace m3serve::server {

absl::Status FromProto(const v1::Selection& in, SelectionSpec* out) {
  out->tasks.assign(in.tasks().begin(), in.tasks().end());
  out->categories.assign(in.categories().begin(), in.categories().end());
  out->splits.assign(in.splits().begin(), in.splits().end());
  out->languages.assign(in.languages().begin(), in.languages().end());
  out->licenses.assign(in.licenses().begin(), in.licenses().end());
  out->exclude_tasks.assign(in.exclude_tasks().begin(), in.exclude_tasks().end());
  out->commercial_use_only = in.commercial_use_only();
  switch (in.modality()) {
    case v1::MODALITY_UNSPECIFIED: out->modality.reset(); break;
    case v1::MODALITY_IMAGE: out->modality = storage::Modality::kImage; break;
    case v1::MODALITY_VIDEO: out->modality = storage::Modality::kVideo; break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("selection.modality: unknown value ", static_cast<int>(in.modality())));
  }
  switch (in.held_out()) {
    case v1::HELD_OUT_UNSPECIFIED: out->held_out = SelectionSpec::HeldOut::kAny; break;
    case v1::HELD_OUT_EXCLUDE: out->held_out = SelectionSpec::HeldOut::kExclude; break;
    case v1::HELD_OUT_ONLY: out->held_out = SelectionSpec::HeldOut::kOnly; break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "selection.held_out: unknown value ", static_cast<int>(in.held_out()),
          " (known: HELD_OUT_UNSPECIFIED, HELD_OUT_EXCLUDE, HELD_OUT_ONLY)"));
  }
  out->exclude_eval_images = in.exclude_eval_images();
  out->eval_splits.assign(in.eval_splits().begin(), in.eval_splits().end());
  out->eval_tasks.assign(in.eval_tasks().begin(), in.eval_tasks().end());
  return absl::OkStatus();
}

absl::Status FromProto(const v1::ImageOptions& in, const RequestLimits& limits, BuildOptions* out) {
  switch (in.mode()) {
    case v1::IMAGE_MODE_UNSPECIFIED:
    case v1::IMAGE_MODE_ENCODED: out->images = ImageMode::kEncoded; break;
    case v1::IMAGE_MODE_DECODED: out->images = ImageMode::kDecoded; break;
    case v1::IMAGE_MODE_NONE: out->images = ImageMode::kNone; break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("images.mode: unknown value ", static_cast<int>(in.mode())));
  }
  switch (in.resize()) {
    case v1::RESIZE_MODE_UNSPECIFIED:
    case v1::RESIZE_MODE_FIT: out->target.mode = ResizeMode::kFit; break;
    case v1::RESIZE_MODE_FILL: out->target.mode = ResizeMode::kFill; break;
    case v1::RESIZE_MODE_STRETCH: out->target.mode = ResizeMode::kStretch; break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("images.resize: unknown value ", static_cast<int>(in.resize())));
  }
  if (in.width() > limits.max_image_side || in.height() > limits.max_image_side) {
    return absl::InvalidArgumentError(absl::StrCat("images.width / images.height: at most ",
                                                   limits.max_image_side, " pixels"));
  }
  if ((in.width() || in.height()) && out->images != ImageMode::kDecoded) {
    return absl::InvalidArgumentError(
        "images.width / images.height: a target size needs images.mode = IMAGE_MODE_DECODED");
  }
  out->target.width = in.width();
  out->target.height = in.height();
  out->max_images = in.max_images_per_instance();
  out->max_decoded_pixels = limits.max_decoded_pixels;
  out->max_instance_bytes = limits.max_send_bytes();
  if (in.width() && in.height()) {
    const uint64_t pixels = uint64_t{in.width()} * in.height();
    if (pixels > limits.max_decoded_pixels) {
      return absl::InvalidArgumentError(absl::StrCat(
          "images.width x images.height: ", in.width(), " x ", in.height(), " = ", pixels,
          " pixels per image, above the server's limit of ", limits.max_decoded_pixels,
          " (--max-decoded-pixels)"));
    }
    const uint64_t least = pixels * 3 * std::max<uint32_t>(1, in.max_images_per_instance());
    if (least > limits.max_send_bytes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "images.width x images.height", in.max_images_per_instance() ? " x images.max_images_per_instance" : "",
          ": one instance would decode to at least ", least, " bytes, above the largest message the server sends (",
          limits.max_send_bytes(), " bytes, --max-message-bytes); ask for a smaller size or fewer images"));
    }
  }
  return absl::OkStatus();
}

absl::Status FromProto(const v1::Mixture& in, MixtureSpec* out) {
  for (const auto& c : in.components()) {
    out->components.emplace_back(c.key(), c.has_weight() ? std::optional<double>(c.weight()) : std::nullopt);
  }
  if (in.has_temperature()) out->temperature = in.temperature();
  if (in.has_epoch_size()) out->epoch_size = in.epoch_size();
  out->stratified = in.stratified();
  out->stratum = in.stratum();
  if (out->stratum > 0 && !out->stratified) {
    return absl::InvalidArgumentError("mixture.stratum: needs mixture.stratified");
  }
  return absl::OkStatus();
}

absl::Status FromProto(v1::InstructionMode in, BuildOptions* out) {
  switch (in) {
    case v1::INSTRUCTION_MODE_UNSPECIFIED:
    case v1::INSTRUCTION_MODE_AS_INGESTED: out->resample_instructions = false; break;
    case v1::INSTRUCTION_MODE_RESAMPLE: out->resample_instructions = true; break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("instructions: unknown value ", static_cast<int>(in)));
  }
  return absl::OkStatus();
}

absl::Status FromProto(const v1::GetInstancesRequest& in, const RequestLimits& limits, GetSettings* out) {
  if (in.ids_size() > limits.max_get_ids) {
    return absl::InvalidArgumentError(absl::StrCat("ids: at most ", limits.max_get_ids,
                                                   " per call (--max-get-ids), got ", in.ids_size()));
  }
  M3SERVE_RETURN_IF_ERROR(FromProto(in.images(), limits, &out->build));
  M3SERVE_RETURN_IF_ERROR(FromProto(in.instructions(), &out->build));
  out->build.seed = in.seed();
  out->build.epoch = in.epoch();
  const v1::ImageOptions& img = in.images();
  if (img.mode() == v1::IMAGE_MODE_DECODED && img.width() && img.height()) {
    const uint64_t least = uint64_t{img.width()} * img.height() * 3 * static_cast<uint64_t>(in.ids_size());
    if (least > limits.max_send_bytes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ids: ", in.ids_size(), " instances decoded at ", img.width(), " x ", img.height(),
          " need at least ", least, " bytes, above the largest response the server sends (",
          limits.max_send_bytes(), " bytes, --max-message-bytes); ask for fewer ids per call"));
    }
  }
  for (int i = 0; i < in.ids_size(); ++i) {
    storage::GroupKey g;
    uint64_t ordinal;
    absl::Status p = storage::ParseInstanceId(in.ids(i), &g, &ordinal);
    if (!p.ok()) return absl::InvalidArgumentError(absl::StrCat("ids[", i, "]: ", p.message()));
    out->keys.emplace_back(std::move(g), ordinal);
  }
  if (in.has_selection()) {
    out->selection.emplace();
    M3SERVE_RETURN_IF_ERROR(FromProto(in.selection(), &*out->selection));
  }
  return absl::OkStatus();
}

absl::Status FromProto(const v1::StreamRequest& in, const RequestLimits& limits, StreamSettings* out) {
  M3SERVE_RETURN_IF_ERROR(FromProto(in.selection(), &out->selection));
  // The view's own rules (ranges of index, count, rank, ...) are StreamPlan's.
  if (in.has_sharding() && in.has_schedule()) {
    return absl::InvalidArgumentError("sharding and schedule: set one of them, not both");
  }
  if (in.has_sharding()) {
    out->plan.shard_index = in.sharding().index();
    out->plan.shard_count = in.sharding().count();
    out->plan.drop_remainder = in.sharding().drop_remainder();
  }
  if (in.has_schedule()) {
    const v1::Schedule& s = in.schedule();
    out->plan.schedule = true;
    out->plan.world_size = s.world_size();
    out->plan.rank = s.rank();
    out->plan.batch_size = s.batch_size();
    out->plan.num_workers = s.num_workers();
    out->plan.worker = s.worker();
    out->plan.start_sample = s.start_sample();
    out->plan.drop_remainder = s.drop_remainder();
  }
  M3SERVE_RETURN_IF_ERROR(FromProto(in.mixture(), &out->mixture));
  out->plan_fingerprint = in.plan_fingerprint();
  switch (in.order()) {
    case v1::ORDER_UNSPECIFIED:
    case v1::ORDER_SEQUENTIAL: out->plan.order.shuffled = false; break;
    case v1::ORDER_SHUFFLED: out->plan.order.shuffled = true; break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("order: unknown value ", static_cast<int>(in.order())));
  }
  out->plan.order.seed = in.seed();
  out->plan.order.epoch = in.epoch();
  M3SERVE_RETURN_IF_ERROR(FromProto(in.instructions(), &out->build));
  out->build.seed = in.seed();
  out->build.epoch = in.epoch();
  M3SERVE_RETURN_IF_ERROR(FromProto(in.images(), limits, &out->build));
  out->batch_size = in.has_batch_size() ? in.batch_size() : limits.default_batch_size;
  if (out->batch_size == 0 || out->batch_size > limits.max_batch_size) {
    return absl::InvalidArgumentError(absl::StrCat("batch_size must be between 1 and ",
                                                   limits.max_batch_size, ", got ", out->batch_size));
  }
  out->message_bytes = in.max_message_bytes() ? in.max_message_bytes() : limits.default_message_bytes;
  if (out->message_bytes > limits.max_message_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("max_message_bytes must be at most ",
                                                   limits.max_message_bytes, ", got ",
                                                   in.max_message_bytes()));
  }
  out->resume_token = in.resume_token();
  out->limit = in.limit();
  out->start_position = in.start_position();
  return absl::OkStatus();
}

v1::CommercialUse ToProto(storage::CommercialUse c) {
  switch (c) {
    case storage::CommercialUse::kYes: return v1::COMMERCIAL_USE_YES;
    case storage::CommercialUse::kNo: return v1::COMMERCIAL_USE_NO;
    default: return v1::COMMERCIAL_USE_UNKNOWN;
  }
}

v1::Modality ToProto(storage::Modality m) {
  return m == storage::Modality::kVideo ? v1::MODALITY_VIDEO : v1::MODALITY_IMAGE;
}

void ToProto(const Dataset& dataset, const std::string& name, const storage::TaskInfo& t, v1::TaskInfo* out) {
  uint32_t instructions = 0;
  const auto& pools = dataset.catalog().pools;
  for (auto it = pools.lower_bound({name, ""}); it != pools.end() && it->first.first == name; ++it) {
    instructions += static_cast<uint32_t>(it->second.size());
  }
  out->set_name(name);
  out->set_category(t.category);
  out->set_source_dataset(t.source_dataset);
  out->set_license(t.license);
  out->set_license_text(t.license_text);
  out->set_commercial_use(ToProto(t.commercial_use));
  out->set_held_out(t.held_out);
  out->set_modality(ToProto(t.modality));
  out->set_instruction_count(instructions);
  out->set_default_language(t.default_lang);
  out->set_instances(dataset.TaskInstances(name));
}

absl::Status ToProto(const Dataset& dataset, const LicensePolicy* entitlement, v1::Catalog* out) {
  const storage::Catalog& c = dataset.catalog();
  M3SERVE_ASSIGN_OR_RETURN(const uint64_t unique_images, dataset.UniqueImages(entitlement));
  std::set<std::string> languages, splits;
  uint64_t total = 0;
  for (const auto& [name, t] : c.tasks) {
    if (dataset.Admits(t, entitlement)) ToProto(dataset, name, t, out->add_tasks());
  }
  for (const auto& [g, n] : c.counts) {
    const storage::TaskInfo* t = dataset.Task(g.task);
    if (n == 0 || t == nullptr || !dataset.Admits(*t, entitlement)) continue;
    v1::GroupCount* gc = out->add_counts();
    gc->set_task(g.task);
    gc->set_split(g.split);
    gc->set_language(g.lang);
    gc->set_instances(n);
    languages.insert(g.lang);
    splits.insert(g.split);
    total += n;
  }
  for (const auto& l : languages) out->add_languages(l);
  for (const auto& s : splits) out->add_splits(s);
  out->set_dataset_version(dataset.version());
  out->set_total_instances(total);
  out->set_unique_images(unique_images);
  v1::LicensePolicy* p = out->mutable_policy();
  for (const auto& l : dataset.policy().allowed_licenses) p->add_allowed_licenses(l);
  for (auto cu : dataset.policy().allowed_commercial_use) p->add_allowed_commercial_use(ToProto(cu));
  for (const auto& t : dataset.policy().excluded_tasks) p->add_excluded_tasks(t);
  for (const auto& [name, t] : c.tasks) {
    if (!dataset.Admits(t, entitlement)) p->add_removed_tasks(name);
  }
  return absl::OkStatus();
}

void ToProto(const ResolvedSelection& sel, v1::CountResponse* out) {
  out->set_total(sel.total());
  for (size_t i = 0; i < sel.groups.size(); ++i) {
    v1::GroupCount* g = out->add_groups();
    g->set_task(sel.groups[i].task);
    g->set_split(sel.groups[i].split);
    g->set_language(sel.groups[i].lang);
    g->set_instances(sel.prefix[i + 1] - sel.prefix[i]);
    if (sel.exclusions[i]) g->set_eval_excluded(sel.exclusions[i]->excluded());
  }
  for (const auto& t : sel.removed_by_policy) out->add_removed_by_policy(t);
  out->set_eval_set(sel.guard);
  std::map<std::string, uint64_t> by_task;
  for (const auto& [g, n] : sel.guard_losses) {
    by_task[g.task] += n;
    out->set_eval_excluded(out->eval_excluded() + n);
  }
  for (const auto& [task, n] : by_task) {
    v1::TaskCount* t = out->add_eval_excluded_by_task();
    t->set_task(task);
    t->set_instances(n);
  }
}

absl::Status FromProto(v1::ReportFormat in, ReportFormat* out) {
  switch (in) {
    case v1::REPORT_FORMAT_UNSPECIFIED:
    case v1::REPORT_FORMAT_TEXT: *out = ReportFormat::kText; return absl::OkStatus();
    case v1::REPORT_FORMAT_JSON: *out = ReportFormat::kJson; return absl::OkStatus();
    case v1::REPORT_FORMAT_MARKDOWN: *out = ReportFormat::kMarkdown; return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "format: unknown value ", static_cast<int>(in),
          " (known: REPORT_FORMAT_TEXT, REPORT_FORMAT_JSON, REPORT_FORMAT_MARKDOWN)"));
  }
}

void ToProto(const AttributionReport& r, ReportFormat format, v1::AttributionResponse* out) {
  out->set_dataset_version(r.dataset_version);
  out->set_instances(r.instances);
  out->set_images(r.images);
  out->set_samples(r.samples);
  out->set_eval_set(r.eval_set);
  for (const auto& t : r.removed_by_policy) out->add_removed_by_policy(t);
  for (const auto& s : r.sources) {
    v1::SourceAttribution* x = out->add_sources();
    x->set_source_dataset(s.source_dataset);
    for (const auto& t : s.tasks) x->add_tasks(t);
    x->set_license(s.license);
    x->set_license_text(s.license_text);
    x->set_commercial_use(ToProto(s.commercial_use));
    x->set_instances(s.instances);
    x->set_images(s.images);
    x->set_samples(s.samples);
  }
  out->set_report(RenderAttribution(r, format));
}

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

std::string CodeName(absl::StatusCode code) {
  std::string name = absl::StatusCodeToString(code);
  absl::AsciiStrToUpper(&name);
  for (char& c : name) {
    if (c == ' ') c = '_';
  }
  return name;
}

}  // namespace m3serve::server
