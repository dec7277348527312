// m3serve-client: talk to m3serve servers from the command line.
//
//   m3serve-client catalog [--target HOST:PORT,...] [--json]
//   m3serve-client count [selection flags] [--json]
//   m3serve-client stream [selection, sharding, order, image flags] [--dump DIR] [--json]
//   m3serve-client get ID... [image flags] [--json]
//   m3serve-client plan [stream, mixture, schedule flags] [--json]
//   m3serve-client bench [stream flags] [--seconds N]
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "client/dataset_client.h"
#include "common/base64.h"
#include "common/cli.h"
#include "common/json_writer.h"

namespace {

using namespace m3serve;  // NOLINT
namespace v1 = m3serve::v1;

constexpr char kUsage[] =
    "usage: m3serve-client COMMAND [flags]\n\n"
    "commands:\n"
    "  catalog   tasks, languages, splits, counts, dataset version, license policy\n"
    "  count     how many instances a selection matches (total and per group)\n"
    "  stream    stream one shard of a selection (summary per batch, or --dump DIR)\n"
    "  get       fetch instances by id (task/split/lang/ordinal)\n"
    "  plan      preview a stream's epoch: mixture components, shares, repeats, fingerprint\n"
    "  attribution  per source dataset of a selection or mixture: license, commercial use,\n"
    "            instances, images, samples (text, JSON or Markdown)\n"
    "  bench     measure instances/s, images/s and MB/s over a stream\n\n"
    "Run `m3serve-client COMMAND --help` for the flags of a command.\n";

// Flags shared by the commands; each command registers the groups it uses.
struct Flags {
  std::vector<std::string> targets{"127.0.0.1:50051"};
  std::vector<std::string> tasks, categories, splits, languages, licenses, exclude_tasks;
  std::vector<std::string> eval_splits, eval_tasks;
  bool commercial_use_only = false, exclude_eval_images = false;
  std::string modality, held_out;
  int64_t shard_index = 0, shard_count = 1, seed = 0, epoch = 0, batch_size = 32, limit = 0,
          width = 0, height = 0, max_images = 0, max_message_bytes = 0, seconds = 0;
  bool drop_remainder = false, shuffle = false, resample = false, json = false;
  std::string images = "encoded", resize = "fit", resume_token, dump;
  std::string tls_ca, tls_cert, tls_key, token_file;
  double deadline_seconds = 30;
  // Mixture and schedule (a training job's geometry).
  std::vector<std::string> weights;
  std::string temperature, epoch_size, plan_fingerprint;
  bool stratified = false;
  int64_t stratum = 0, world_size = 0, rank = 0, rank_batch = 0, workers = 1, worker = 0, start_sample = -1;

  void Target(FlagSet& f) {
    f.List("target", &targets, "server addresses; streams fail over between them", "HOST:PORT,...");
    f.Double("deadline", &deadline_seconds, "deadline of unary calls, seconds");
    f.Bool("json", &json, "machine-readable output");
    f.String("tls-ca", &tls_ca, "connect with TLS; CA certificate of the server (PEM)", "FILE");
    f.String("tls-cert", &tls_cert, "client certificate for mTLS (PEM)", "FILE");
    f.String("tls-key", &tls_key, "client key for mTLS (PEM)", "FILE");
    f.String("token-file", &token_file, "file holding the bearer token (or $M3SERVE_TOKEN)", "FILE");
  }
  void Selection(FlagSet& f) {
    f.List("tasks", &tasks, "tasks (HF config names)");
    f.List("categories", &categories, "categories");
    f.List("splits", &splits, "splits (train, validation, test)");
    f.List("languages", &languages, "languages (ISO 639 codes)");
    f.List("licenses", &licenses, "licenses (allow list): SPDX ids (CC-BY-4.0) or known spellings, any case");
    f.Bool("commercial-use-only", &commercial_use_only, "only tasks whose terms allow commercial use");
    f.List("exclude-tasks", &exclude_tasks, "tasks to leave out");
    f.String("modality", &modality, "image or video", "M");
    f.String("held-out", &held_out,
             "exclude: leave out the tasks the M3IT paper holds out for evaluation; only: just those",
             "exclude|only");
    f.Bool("exclude-eval-images", &exclude_eval_images,
           "leave out every instance that shares an image with the evaluation set (and that set itself)");
    f.List("eval-splits", &eval_splits, "the evaluation set's splits (default: validation,test)");
    f.List("eval-tasks", &eval_tasks, "the evaluation set's tasks (default: every task)");
  }
  void Images(FlagSet& f) {
    f.String("images", &images, "encoded | decoded | none", "MODE");
    f.Int("width", &width, "decoded target width");
    f.Int("height", &height, "decoded target height");
    f.String("resize", &resize, "fit | fill | stretch", "MODE");
    f.Int("max-images", &max_images, "at most this many images per instance (0: all)");
    f.Bool("resample-instructions", &resample, "re-sample instructions from the task pools");
    f.Int("seed", &seed, "seed (shuffle order, instruction sampling)");
    f.Int("epoch", &epoch, "epoch (shuffle order, instruction sampling)");
  }
  void Stream(FlagSet& f) {
    f.Int("shard-index", &shard_index, "this worker's shard");
    f.Int("shard-count", &shard_count, "number of shards");
    f.Bool("drop-remainder", &drop_remainder, "equal shard sizes (drop the last N mod count)");
    f.Bool("shuffle", &shuffle, "seeded shuffle instead of key order");
    f.Int("batch-size", &batch_size, "instances per batch");
    f.Int("max-message-bytes", &max_message_bytes, "byte cap per message (0: server default)");
    f.String("resume-token", &resume_token, "continue a stream (base64 token printed by a previous run)", "B64");
    f.Int("limit", &limit, "stop after this many instances (0: whole shard)");
  }

  void Mixture(FlagSet& f) {
    f.List("weights", &weights, "mixture: relative shares per task or task:language; '*' = every other task",
           "KEY=W,...");
    f.String("temperature", &temperature, "mixture: weight = instances^(1/T) per task (1: natural, large: uniform)",
             "T");
    f.String("epoch-size", &epoch_size, "samples per epoch (default: the natural size)", "N");
    f.Bool("stratified", &stratified, "every block of --stratum samples holds each component's share (+-1)");
    f.Int("stratum", &stratum, "stratified block size (default: world size x rank batch, else --batch-size)");
  }
  void Schedule(FlagSet& f) {
    f.Int("world-size", &world_size, "schedule: ranks of the training job (instead of sharding)");
    f.Int("rank", &rank, "schedule: this rank");
    f.Int("rank-batch", &rank_batch, "schedule: samples per rank per step (default: --batch-size)");
    f.Int("workers", &workers, "schedule: data-loader workers per rank");
    f.Int("worker", &worker, "schedule: this worker");
    f.Int("start-sample", &start_sample, "schedule: samples of the epoch the job has consumed (its data position)");
    f.String("plan-fingerprint", &plan_fingerprint, "refuse unless the request resolves to this plan", "HEX");
  }

  absl::Status FillMixture(v1::Mixture* m) const {
    for (const auto& w : weights) {
      const size_t eq = w.rfind('=');
      double v;
      if (eq == std::string::npos || eq == 0 || !absl::SimpleAtod(w.substr(eq + 1), &v)) {
        return absl::InvalidArgumentError(absl::StrCat("--weights: '", w, "' is not KEY=WEIGHT"));
      }
      v1::MixtureComponent* c = m->add_components();
      c->set_key(w.substr(0, eq));
      c->set_weight(v);
    }
    if (!temperature.empty()) {
      double t;
      if (!absl::SimpleAtod(temperature, &t)) return absl::InvalidArgumentError("--temperature: not a number");
      m->set_temperature(t);
    }
    if (!epoch_size.empty()) {
      uint64_t n;
      if (!absl::SimpleAtoi(epoch_size, &n)) return absl::InvalidArgumentError("--epoch-size: not a count");
      m->set_epoch_size(n);
    }
    if (stratum < 0) return absl::InvalidArgumentError("--stratum: negative");
    m->set_stratified(stratified);
    m->set_stratum(static_cast<uint64_t>(stratum));
    return absl::OkStatus();
  }

  absl::Status FillSelection(v1::Selection* s) const {
    for (const auto& x : tasks) s->add_tasks(x);
    for (const auto& x : categories) s->add_categories(x);
    for (const auto& x : splits) s->add_splits(x);
    for (const auto& x : languages) s->add_languages(x);
    for (const auto& x : licenses) s->add_licenses(x);
    for (const auto& x : exclude_tasks) s->add_exclude_tasks(x);
    s->set_commercial_use_only(commercial_use_only);
    if (modality == "image") s->set_modality(v1::MODALITY_IMAGE);
    else if (modality == "video") s->set_modality(v1::MODALITY_VIDEO);
    else if (!modality.empty()) return absl::InvalidArgumentError("--modality must be image or video");
    if (held_out == "exclude") s->set_held_out(v1::HELD_OUT_EXCLUDE);
    else if (held_out == "only") s->set_held_out(v1::HELD_OUT_ONLY);
    else if (!held_out.empty()) return absl::InvalidArgumentError("--held-out must be exclude or only");
    s->set_exclude_eval_images(exclude_eval_images);
    for (const auto& x : eval_splits) s->add_eval_splits(x);
    for (const auto& x : eval_tasks) s->add_eval_tasks(x);
    return absl::OkStatus();
  }
  absl::Status FillImages(v1::ImageOptions* o) const {
    if (images == "encoded") o->set_mode(v1::IMAGE_MODE_ENCODED);
    else if (images == "decoded") o->set_mode(v1::IMAGE_MODE_DECODED);
    else if (images == "none") o->set_mode(v1::IMAGE_MODE_NONE);
    else return absl::InvalidArgumentError("--images must be encoded, decoded or none");
    if (resize == "fit") o->set_resize(v1::RESIZE_MODE_FIT);
    else if (resize == "fill") o->set_resize(v1::RESIZE_MODE_FILL);
    else if (resize == "stretch") o->set_resize(v1::RESIZE_MODE_STRETCH);
    else return absl::InvalidArgumentError("--resize must be fit, fill or stretch");
    if (width < 0 || height < 0 || max_images < 0) return absl::InvalidArgumentError("negative size");
    o->set_width(static_cast<uint32_t>(width));
    o->set_height(static_cast<uint32_t>(height));
    o->set_max_images_per_instance(static_cast<uint32_t>(max_images));
    return absl::OkStatus();
  }
  absl::Status FillStream(v1::StreamRequest* r) const {
    if (absl::Status s = FillSelection(r->mutable_selection()); !s.ok()) return s;
    if (absl::Status s = FillImages(r->mutable_images()); !s.ok()) return s;
    if (shard_index < 0 || shard_count < 0 || batch_size < 0 || limit < 0 || max_message_bytes < 0) {
      return absl::InvalidArgumentError("negative number in a stream flag");
    }
    if (auto s = FillMixture(r->mutable_mixture()); !s.ok()) return s;
    if (world_size > 0 || start_sample >= 0) {
      if (rank < 0 || rank_batch < 0 || workers < 0 || worker < 0) {
        return absl::InvalidArgumentError("negative number in a schedule flag");
      }
      v1::Schedule* sc = r->mutable_schedule();
      sc->set_world_size(static_cast<uint32_t>(std::max<int64_t>(world_size, 1)));
      sc->set_rank(static_cast<uint32_t>(rank));
      sc->set_batch_size(static_cast<uint32_t>(rank_batch > 0 ? rank_batch : batch_size));
      sc->set_num_workers(static_cast<uint32_t>(workers));
      sc->set_worker(static_cast<uint32_t>(worker));
      sc->set_start_sample(static_cast<uint64_t>(std::max<int64_t>(start_sample, 0)));
      sc->set_drop_remainder(drop_remainder);
    } else {
      r->mutable_sharding()->set_index(static_cast<uint32_t>(shard_index));
      r->mutable_sharding()->set_count(static_cast<uint32_t>(shard_count));
      r->mutable_sharding()->set_drop_remainder(drop_remainder);
    }
    r->set_plan_fingerprint(plan_fingerprint);
    r->set_order(shuffle ? v1::ORDER_SHUFFLED : v1::ORDER_SEQUENTIAL);
    r->set_seed(static_cast<uint64_t>(seed));
    r->set_epoch(static_cast<uint64_t>(epoch));
    r->set_instructions(resample ? v1::INSTRUCTION_MODE_RESAMPLE : v1::INSTRUCTION_MODE_AS_INGESTED);
    r->set_batch_size(static_cast<uint32_t>(batch_size));
    r->set_max_message_bytes(static_cast<uint64_t>(max_message_bytes));
    r->set_limit(static_cast<uint64_t>(limit));
    if (!resume_token.empty()) {
      std::string raw;
      if (absl::Status s = Base64Decode(resume_token, &raw); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("--resume-token: ", s.message()));
      }
      r->set_resume_token(raw);
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<client::DatasetClient>> Client() const {
    client::ClientOptions o;
    o.targets = targets;
    o.unary_deadline = absl::Milliseconds(static_cast<int64_t>(deadline_seconds * 1000));
    if (!tls_ca.empty() || !tls_cert.empty()) {
      auto creds = client::TlsCredentials(tls_ca, tls_cert, tls_key);
      if (!creds.ok()) return creds.status();
      o.credentials = *creds;
    }
    if (!token_file.empty()) {
      std::ifstream f(token_file);
      std::getline(f, o.token);
      if (!f && o.token.empty()) return absl::InvalidArgumentError("cannot read --token-file " + token_file);
    } else if (const char* env = std::getenv("M3SERVE_TOKEN"); env != nullptr) {
      o.token = env;
    }
    return client::DatasetClient::Create(o);
  }
};

int Fail(const std::string& cmd, const absl::Status& s) {
  std::fprintf(stderr, "m3serve-client %s: %s: %s\n", cmd.c_str(),
               absl::StatusCodeToString(s.code()).c_str(), std::string(s.message()).c_str());
  return 1;
}

// Connect and make one unary call; on an error print it and return nothing
// (the command then exits 1).
template <typename Response, typename Request>
std::optional<Response> Call(const Flags& fl, const char* cmd,
                             absl::StatusOr<Response> (client::DatasetClient::*method)(const Request&),
                             const Request& request) {
  auto c = fl.Client();
  if (!c.ok()) {
    Fail(cmd, c.status());
    return std::nullopt;
  }
  absl::StatusOr<Response> r = ((**c).*method)(request);
  if (!r.ok()) {
    Fail(cmd, r.status());
    return std::nullopt;
  }
  return std::move(*r);
}

const char* FormatName(v1::Image::Format f) {
  switch (f) {
    case v1::Image::FORMAT_JPEG: return "jpeg";
    case v1::Image::FORMAT_PNG: return "png";
    case v1::Image::FORMAT_GIF: return "gif";
    case v1::Image::FORMAT_BMP: return "bmp";
    case v1::Image::FORMAT_WEBP: return "webp";
    case v1::Image::FORMAT_TIFF: return "tiff";
    case v1::Image::FORMAT_RGB8: return "rgb8";
    default: return "unknown";
  }
}

void InstanceJson(const v1::Instance& x, JsonWriter& w) {
  w.BeginObject().Key("id").String(x.id()).Key("task").String(x.task()).Key("split").String(x.split())
      .Key("language").String(x.language()).Key("instruction").String(x.instruction())
      .Key("inputs").String(x.inputs()).Key("outputs").String(x.outputs())
      .Key("license").String(x.license()).Key("source_dataset").String(x.source_dataset())
      .Key("shard_position").Uint(x.shard_position()).Key("sample_index").Uint(x.sample_index());
  if (!x.component().empty()) w.Key("component").String(x.component());
  if (!x.meta_json().empty()) w.Key("meta").Raw(x.meta_json());
  w.Key("images").BeginArray();
  for (const auto& img : x.images()) {
    w.BeginObject().Key("format").String(FormatName(img.format())).Key("width").Uint(img.width())
        .Key("height").Uint(img.height()).Key("bytes").Uint(img.data().size())
        .Key("content_hash").String(img.content_hash()).EndObject();
  }
  w.EndArray().EndObject();
}

// Write the images of `x` under dir (encoded: original file; decoded: binary PPM).
absl::Status DumpInstance(const v1::Instance& x, const std::string& dir, std::ofstream* texts) {
  std::string base = x.id();
  for (char& c : base) {
    if (c == '/') c = '_';
  }
  JsonWriter w;
  InstanceJson(x, w);
  *texts << w.str() << "\n";
  for (int i = 0; i < x.images_size(); ++i) {
    const auto& img = x.images(i);
    if (img.data().empty()) continue;
    std::string ext = img.format() == v1::Image::FORMAT_RGB8 ? "ppm" : FormatName(img.format());
    std::ofstream f(absl::StrCat(dir, "/", base, "_", i, ".", ext), std::ios::binary);
    if (img.format() == v1::Image::FORMAT_RGB8) f << "P6\n" << img.width() << " " << img.height() << "\n255\n";
    f << img.data();
    if (!f) return absl::UnavailableError(absl::StrCat("cannot write images under ", dir));
  }
  return absl::OkStatus();
}

int Catalog(int argc, char** argv) {
  Flags fl;
  FlagSet f("m3serve-client catalog [--target HOST:PORT] [--json]", "Print the server's catalog.");
  fl.Target(f);
  std::vector<std::string> args;
  if (int code; !f.ParseOrExit(argc, argv, 2, std::string("m3serve-client ") + argv[1], &args, &code)) return code;
  auto c = fl.Client();
  if (!c.ok()) return Fail("catalog", c.status());
  auto cat = (*c)->GetCatalog();
  if (!cat.ok()) return Fail("catalog", cat.status());
  if (fl.json) {
    JsonWriter w(2);
    w.BeginObject().Key("dataset_version").String(cat->dataset_version())
        .Key("total_instances").Uint(cat->total_instances()).Key("unique_images").Uint(cat->unique_images())
        .Key("languages").BeginArray();
    for (const auto& l : cat->languages()) w.String(l);
    w.EndArray().Key("splits").BeginArray();
    for (const auto& s : cat->splits()) w.String(s);
    w.EndArray().Key("tasks").BeginArray();
    for (const auto& t : cat->tasks()) {
      w.BeginObject().Key("name").String(t.name()).Key("category").String(t.category())
          .Key("source_dataset").String(t.source_dataset()).Key("license").String(t.license())
          .Key("license_text").String(t.license_text())
          .Key("commercial_use").String(t.commercial_use() == v1::COMMERCIAL_USE_YES ? "yes"
                                        : t.commercial_use() == v1::COMMERCIAL_USE_NO ? "no" : "unknown")
          .Key("held_out").Bool(t.held_out())
          .Key("modality").String(t.modality() == v1::MODALITY_VIDEO ? "video" : "image")
          .Key("instructions").Uint(t.instruction_count()).Key("instances").Uint(t.instances()).EndObject();
    }
    w.EndArray().Key("groups").BeginArray();
    for (const auto& g : cat->counts()) {
      w.BeginObject().Key("task").String(g.task()).Key("split").String(g.split())
          .Key("lang").String(g.language()).Key("instances").Uint(g.instances()).EndObject();
    }
    w.EndArray().Key("policy").BeginObject().Key("removed_tasks").BeginArray();
    for (const auto& t : cat->policy().removed_tasks()) w.String(t);
    w.EndArray().EndObject().EndObject();
    std::cout << w.str() << std::endl;
    return 0;
  }
  std::cout << absl::StrFormat("dataset version %s: %d instances, %d unique images, %d tasks\n",
                               cat->dataset_version(), cat->total_instances(), cat->unique_images(),
                               cat->tasks_size());
  std::cout << absl::StrFormat("%-26s %-15s %-25s %-10s %-9s %10s\n", "TASK", "CATEGORY", "LICENSE",
                               "COMMERCIAL", "MODALITY", "INSTANCES");
  for (const auto& t : cat->tasks()) {
    std::cout << absl::StrFormat("%-26s %-15s %-25s %-10s %-9s %10d\n", t.name(), t.category(), t.license(),
                                 t.commercial_use() == v1::COMMERCIAL_USE_YES ? "yes"
                                 : t.commercial_use() == v1::COMMERCIAL_USE_NO ? "no" : "unknown",
                                 t.modality() == v1::MODALITY_VIDEO ? "video" : "image", t.instances());
  }
  if (cat->policy().removed_tasks_size() > 0) {
    std::cout << "removed by the license policy:";
    for (const auto& t : cat->policy().removed_tasks()) std::cout << " " << t;
    std::cout << "\n";
  }
  return 0;
}

int Count(int argc, char** argv) {
  Flags fl;
  FlagSet f("m3serve-client count [selection flags] [--json]",
            "Count the instances a selection matches, in total and per group.");
  fl.Target(f);
  fl.Selection(f);
  std::vector<std::string> args;
  if (int code; !f.ParseOrExit(argc, argv, 2, std::string("m3serve-client ") + argv[1], &args, &code)) return code;
  v1::Selection sel;
  if (auto s = fl.FillSelection(&sel); !s.ok()) return Fail("count", s);
  auto r = Call(fl, "count", &client::DatasetClient::Count, sel);
  if (!r) return 1;
  if (fl.json) {
    JsonWriter w(2);
    w.BeginObject().Key("total").Uint(r->total()).Key("groups").BeginArray();
    for (const auto& g : r->groups()) {
      w.BeginObject().Key("task").String(g.task()).Key("split").String(g.split())
          .Key("lang").String(g.language()).Key("instances").Uint(g.instances()).EndObject();
    }
    w.EndArray().Key("removed_by_policy").BeginArray();
    for (const auto& t : r->removed_by_policy()) w.String(t);
    w.EndArray();
    if (!r->eval_set().empty()) {
      w.Key("eval_set").String(r->eval_set()).Key("eval_excluded").Uint(r->eval_excluded())
          .Key("eval_excluded_by_task").BeginObject();
      for (const auto& t : r->eval_excluded_by_task()) w.Key(t.task()).Uint(t.instances());
      w.EndObject();
    }
    w.EndObject();
    std::cout << w.str() << std::endl;
    return 0;
  }
  for (const auto& g : r->groups()) {
    std::cout << absl::StrFormat("%-26s %-12s %-6s %10d\n", g.task(), g.split(), g.language(), g.instances());
  }
  std::cout << "total " << r->total() << "\n";
  if (!r->eval_set().empty()) {
    std::cout << "left out by the evaluation guard (" << r->eval_set() << "): " << r->eval_excluded() << "\n";
    for (const auto& t : r->eval_excluded_by_task()) {
      std::cout << absl::StrFormat("  %-24s %10d\n", t.task(), t.instances());
    }
  }
  return 0;
}

int Stream(int argc, char** argv, bool bench) {
  Flags fl;
  FlagSet f(bench ? "m3serve-client bench [stream flags] [--seconds N]"
                  : "m3serve-client stream [stream flags] [--dump DIR] [--json]",
            bench ? "Stream a shard and report instances/s, images/s and MB/s."
                  : "Stream one shard of a selection. Prints one line per batch (or, with --json,\n"
                    "one JSON object per instance), then the token that resumes after the last batch.");
  fl.Target(f);
  fl.Selection(f);
  fl.Stream(f);
  fl.Mixture(f);
  fl.Schedule(f);
  fl.Images(f);
  if (bench) f.Int("seconds", &fl.seconds, "stop after this many seconds (0: whole shard)");
  else f.String("dump", &fl.dump, "write images and texts.jsonl into this directory", "DIR");
  std::vector<std::string> args;
  const char* cmd = bench ? "bench" : "stream";
  if (int code; !f.ParseOrExit(argc, argv, 2, std::string("m3serve-client ") + argv[1], &args, &code)) return code;
  v1::StreamRequest req;
  if (auto s = fl.FillStream(&req); !s.ok()) return Fail(cmd, s);
  auto c = fl.Client();
  if (!c.ok()) return Fail(cmd, c.status());
  std::ofstream texts;
  if (!fl.dump.empty()) {
    std::filesystem::create_directories(fl.dump);
    texts.open(fl.dump + "/texts.jsonl");
  }
  auto stream = (*c)->Stream(req);
  v1::InstanceBatch batch;
  uint64_t batches = 0, images = 0, bytes = 0, shard_size = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (true) {
    auto more = stream->Next(&batch);
    if (!more.ok()) return Fail(cmd, more.status());
    if (!*more) break;
    ++batches;
    shard_size = batch.shard_size();
    bytes += batch.ByteSizeLong();
    for (const auto& x : batch.instances()) images += x.images_size();
    if (!bench) {
      if (fl.json) {
        for (const auto& x : batch.instances()) {
          JsonWriter w;
          InstanceJson(x, w);
          std::cout << w.str() << "\n";
        }
      } else {
        std::cout << absl::StrFormat("batch %d: %d instances (%s .. %s), next position %d of %d, %.1f KB\n",
                                     batches, batch.instances_size(),
                                     batch.instances_size() ? batch.instances(0).id() : "",
                                     batch.instances_size() ? batch.instances(batch.instances_size() - 1).id() : "",
                                     batch.next_position(), batch.shard_size(), batch.ByteSizeLong() / 1e3);
      }
      if (!fl.dump.empty()) {
        for (const auto& x : batch.instances()) {
          if (auto s = DumpInstance(x, fl.dump, &texts); !s.ok()) return Fail(cmd, s);
        }
      }
    }
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (bench && fl.seconds > 0 && elapsed >= fl.seconds) {
      stream->Cancel();
      break;
    }
  }
  elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const uint64_t n = stream->received();
  if (bench) {
    JsonWriter w(fl.json ? 0 : 2);
    w.BeginObject().Key("instances").Uint(n).Key("images").Uint(images).Key("bytes").Uint(bytes)
        .Key("seconds").Double(elapsed).Key("instances_per_second").Double(n / std::max(elapsed, 1e-9))
        .Key("images_per_second").Double(images / std::max(elapsed, 1e-9))
        .Key("mb_per_second").Double(bytes / 1e6 / std::max(elapsed, 1e-9))
        .Key("reconnects").Int(stream->reconnects()).EndObject();
    std::cout << w.str() << std::endl;
    return 0;
  }
  std::string token = Base64Encode(stream->resume_token());
  if (fl.json) {
    std::cerr << "{\"instances\": " << n << ", \"batches\": " << batches << ", \"shard_size\": " << shard_size
              << ", \"reconnects\": " << stream->reconnects() << ", \"resume_token\": \"" << token << "\"}\n";
  } else {
    std::cout << absl::StrFormat("%d instances in %d batches (%d images, %.1f MB) in %.2f s, %d reconnects\n",
                                 n, batches, images, bytes / 1e6, elapsed, stream->reconnects());
    std::cout << "resume token: " << token << "\n";
  }
  return 0;
}

int Get(int argc, char** argv) {
  Flags fl;
  FlagSet f("m3serve-client get ID... [image flags] [selection flags] [--json]",
            "Fetch instances by id (task/split/lang/ordinal). With selection flags, every id must\n"
            "be in that selection (e.g. --exclude-eval-images refuses an id that shares an image\n"
            "with the evaluation set).");
  fl.Target(f);
  fl.Images(f);
  fl.Selection(f);
  f.String("dump", &fl.dump, "write images and texts.jsonl into this directory", "DIR");
  std::vector<std::string> ids;
  if (int code; !f.ParseOrExit(argc, argv, 2, std::string("m3serve-client ") + argv[1], &ids, &code)) return code;
  if (ids.empty()) return std::fprintf(stderr, "m3serve-client get: no ID given\n"), 2;
  v1::GetInstancesRequest req;
  for (const auto& id : ids) req.add_ids(id);
  if (auto s = fl.FillImages(req.mutable_images()); !s.ok()) return Fail("get", s);
  req.set_instructions(fl.resample ? v1::INSTRUCTION_MODE_RESAMPLE : v1::INSTRUCTION_MODE_AS_INGESTED);
  req.set_seed(static_cast<uint64_t>(fl.seed));
  req.set_epoch(static_cast<uint64_t>(fl.epoch));
  v1::Selection sel;
  if (auto s = fl.FillSelection(&sel); !s.ok()) return Fail("get", s);
  if (sel.ByteSizeLong() > 0) *req.mutable_selection() = sel;
  auto r = Call(fl, "get", &client::DatasetClient::GetInstances, req);
  if (!r) return 1;
  std::ofstream texts;
  if (!fl.dump.empty()) {
    std::filesystem::create_directories(fl.dump);
    texts.open(fl.dump + "/texts.jsonl");
  }
  for (const auto& x : r->instances()) {
    JsonWriter w(fl.json ? 0 : 2);
    InstanceJson(x, w);
    std::cout << w.str() << "\n";
    if (!fl.dump.empty()) {
      if (auto s = DumpInstance(x, fl.dump, &texts); !s.ok()) return Fail("get", s);
    }
  }
  return 0;
}

int Plan(int argc, char** argv) {
  Flags fl;
  FlagSet f("m3serve-client plan [stream, mixture, schedule flags] [--json]",
            "Preview what `stream` with the same flags would serve: the plan fingerprint, the\n"
            "epoch's size, and per mixture component its instances, weight, share of the epoch,\n"
            "samples per epoch and passes (above 1: it repeats; below 1: it is subsampled).");
  fl.Target(f);
  fl.Selection(f);
  fl.Stream(f);
  fl.Mixture(f);
  fl.Schedule(f);
  fl.Images(f);
  std::vector<std::string> args;
  if (int code; !f.ParseOrExit(argc, argv, 2, std::string("m3serve-client ") + argv[1], &args, &code)) return code;
  v1::StreamRequest req;
  if (auto s = fl.FillStream(&req); !s.ok()) return Fail("plan", s);
  auto r = Call(fl, "plan", &client::DatasetClient::Plan, req);
  if (!r) return 1;
  if (fl.json) {
    JsonWriter w(2);
    w.BeginObject().Key("fingerprint").String(r->fingerprint()).Key("dataset_version").String(r->dataset_version())
        .Key("epoch_samples").Uint(r->epoch_samples()).Key("view_instances").Uint(r->view_instances())
        .Key("stratum").Uint(r->stratum()).Key("components").BeginArray();
    for (const auto& x : r->components()) {
      w.BeginObject().Key("key").String(x.key()).Key("instances").Uint(x.instances()).Key("weight").Double(x.weight())
          .Key("share").Double(x.share()).Key("samples").Uint(x.samples()).Key("passes").Double(x.passes())
          .EndObject();
    }
    w.EndArray().Key("removed_by_policy").BeginArray();
    for (const auto& t : r->removed_by_policy()) w.String(t);
    w.EndArray().EndObject();
    std::cout << w.str() << std::endl;
    return 0;
  }
  std::cout << absl::StrFormat("plan %s (dataset version %s)\n", r->fingerprint(), r->dataset_version());
  std::cout << absl::StrFormat("%d samples per epoch%s; this view serves %d\n", r->epoch_samples(),
                               r->stratum() ? absl::StrCat(", stratified in blocks of ", r->stratum()) : "",
                               r->view_instances());
  std::cout << absl::StrFormat("%-26s %10s %10s %8s %10s %8s\n", "COMPONENT", "INSTANCES", "WEIGHT", "SHARE",
                               "SAMPLES", "PASSES");
  for (const auto& x : r->components()) {
    std::cout << absl::StrFormat("%-26s %10d %10.4g %7.2f%% %10d %8.3f\n",
                                 x.key().empty() ? "(selection)" : x.key(), x.instances(), x.weight(),
                                 100 * x.share(), x.samples(), x.passes());
  }
  return 0;
}

int Attribution(int argc, char** argv) {
  Flags fl;
  std::string format = "text";
  FlagSet f("m3serve-client attribution [selection flags] [mixture flags] [--format text|json|markdown]",
            "Who to credit and under which terms: per source dataset of the selection (or of the\n"
            "mixture's epoch), its license (SPDX id and the published wording), commercial use,\n"
            "tasks, instances, distinct images and samples per epoch. Markdown is ready for a model card.");
  fl.Target(f);
  fl.Selection(f);
  fl.Mixture(f);
  f.String("format", &format, "text | json | markdown (--json: json)", "F");
  std::vector<std::string> args;
  if (int code; !f.ParseOrExit(argc, argv, 2, std::string("m3serve-client ") + argv[1], &args, &code)) return code;
  v1::AttributionRequest req;
  if (auto s = fl.FillSelection(req.mutable_selection()); !s.ok()) return Fail("attribution", s);
  if (auto s = fl.FillMixture(req.mutable_mixture()); !s.ok()) return Fail("attribution", s);
  if (fl.json) format = "json";
  if (format == "text") req.set_format(v1::REPORT_FORMAT_TEXT);
  else if (format == "json") req.set_format(v1::REPORT_FORMAT_JSON);
  else if (format == "markdown") req.set_format(v1::REPORT_FORMAT_MARKDOWN);
  else return Fail("attribution", absl::InvalidArgumentError("--format must be text, json or markdown"));
  auto r = Call(fl, "attribution", &client::DatasetClient::Attribution, req);
  if (!r) return 1;
  std::cout << r->report();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  if (cmd == "catalog") return Catalog(argc, argv);
  if (cmd == "count") return Count(argc, argv);
  if (cmd == "stream") return Stream(argc, argv, false);
  if (cmd == "bench") return Stream(argc, argv, true);
  if (cmd == "get") return Get(argc, argv);
  if (cmd == "plan") return Plan(argc, argv);
  if (cmd == "attribution") return Attribution(argc, argv);
  std::fprintf(stderr, "m3serve-client: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
