#include "server/http_api.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/json_writer.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/instance_builder.h"
#include "server/stream_setup.h"
#include "server/web_assets.h"

namespace m3serve::server {
namespace {

const std::set<std::string> kSelectionParameters = {
    "tasks",      "categories", "splits",        "languages",           "licenses",  "exclude_tasks",
    "eval_splits", "eval_tasks", "commercial_use_only", "exclude_eval_images", "modality", "held_out"};

std::string ToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

HttpResponse Json(std::string body, int status = 200) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = "application/json; charset=utf-8";
  // What an API answer holds depends on the caller's token: never shared.
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

HttpResponse Error(int status, absl::StatusCode code, const std::string& parameter, absl::string_view message) {
  JsonWriter w;
  w.BeginObject().Key("error").BeginObject();
  w.Key("status").Int(status);
  w.Key("code").String(CodeName(code));
  w.Key("parameter");
  if (parameter.empty()) {
    w.Null();
  } else {
    w.String(parameter);
  }
  w.Key("message").String(SanitizeUtf8(message));
  w.EndObject().EndObject();
  HttpResponse r = Json(w.str(), status);
  if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"m3serve\"");
  return r;
}

// The HTTP status of a check's error.
int HttpStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:  // a name the store does not have, in a parameter
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

// The parameter an error message of the shared rules names: "selection.tasks:
// ..." -> "tasks", "ids[0]: ..." -> `id_parameter`; "" when it names none of
// `known`.
std::string ParameterOf(absl::string_view message, const std::set<std::string>& known,
                        const std::string& id_parameter) {
  absl::string_view head = message.substr(0, message.find(':'));
  absl::ConsumePrefix(&head, "selection.");
  head = head.substr(0, head.find('['));
  head = head.substr(0, head.find('.'));
  if (head == "ids" && !id_parameter.empty()) return id_parameter;
  return known.count(std::string(head)) ? std::string(head) : "";
}

// The first `chars` characters of `s` (UTF-8 aware), with "…" when cut.
std::string Shorten(const std::string& s, size_t chars) {
  size_t i = 0, n = 0;
  while (i < s.size() && n < chars) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    i += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    ++n;
  }
  if (i >= s.size()) return s;
  return s.substr(0, i) + "\xE2\x80\xA6";
}

}  // namespace

// One request: its parameters (each read marks it used) and its caller.
struct HttpApi::Call {
  const HttpRequest& req;
  const Identity* identity = nullptr;
  std::set<std::string> known;  // parameters this endpoint takes

  const LicensePolicy* entitlement() const { return identity ? &identity->entitlement : nullptr; }
  std::string who() const { return identity ? identity->name : ""; }
  StreamCaller caller() const {
    StreamCaller c;
    if (identity) c = {&identity->entitlement, identity->name};
    return c;
  }

  // An unknown parameter, or "".
  std::string Unknown() const {
    for (const auto& [name, value] : req.query) {
      if (!known.count(name)) return name;
    }
    return "";
  }
  // Every value of `name`, comma-separated values split, empty ones dropped.
  std::vector<std::string> List(const std::string& name) const {
    std::vector<std::string> out;
    for (const auto& [n, value] : req.query) {
      if (n != name) continue;
      for (absl::string_view v : absl::StrSplit(value, ',', absl::SkipEmpty())) out.emplace_back(v);
    }
    return out;
  }
  // The value of `name` (nullopt when absent); InvalidArgument when repeated.
  absl::StatusOr<std::optional<std::string>> One(const std::string& name) const {
    std::optional<std::string> out;
    for (const auto& [n, value] : req.query) {
      if (n != name) continue;
      if (out) return absl::InvalidArgumentError(absl::StrCat(name, ": given more than once"));
      out = value;
    }
    return out;
  }
  // The number `name` (lo..hi) into *out; *out untouched and *given false when absent.
  absl::Status Uint(const std::string& name, uint64_t lo, uint64_t hi, uint64_t* out, bool* given = nullptr) const {
    M3SERVE_ASSIGN_OR_RETURN(std::optional<std::string> v, One(name));
    if (given) *given = v.has_value();
    if (!v) return absl::OkStatus();
    uint64_t x = 0;
    if (!absl::SimpleAtoi(*v, &x) || x < lo || x > hi) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": '", absl::CHexEscape(Shorten(*v, 40)), "' is not a whole number from ", lo, " to ", hi));
    }
    *out = x;
    return absl::OkStatus();
  }
  absl::Status Bool(const std::string& name, bool* out) const {
    M3SERVE_ASSIGN_OR_RETURN(std::optional<std::string> v, One(name));
    if (!v) return absl::OkStatus();
    const std::string s = absl::AsciiStrToLower(*v);
    if (s == "true" || s == "1" || s == "yes" || s.empty()) {
      *out = true;
    } else if (s == "false" || s == "0" || s == "no") {
      *out = false;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(name, ": '", absl::CHexEscape(Shorten(*v, 40)),
                                                     "' is not true or false"));
    }
    return absl::OkStatus();
  }

  // The value of `name` among `choices` (absent or empty: *out untouched).
  template <typename T>
  absl::Status Choice(const std::string& name, const std::vector<std::pair<std::string, T>>& choices, T* out) const {
    M3SERVE_ASSIGN_OR_RETURN(std::optional<std::string> v, One(name));
    if (!v || v->empty()) return absl::OkStatus();
    std::string known;
    for (const auto& [text, value] : choices) {
      if (*v == text) {
        *out = value;
        return absl::OkStatus();
      }
      absl::StrAppend(&known, known.empty() ? "" : ", ", text);
    }
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": unknown value '", absl::CHexEscape(Shorten(*v, 40)), "' (known: ", known, ")"));
  }

  // The selection of the request's parameters, as the gRPC API's Selection.
  absl::Status Selection(v1::Selection* out) const {
    for (const auto& v : List("tasks")) out->add_tasks(v);
    for (const auto& v : List("categories")) out->add_categories(v);
    for (const auto& v : List("splits")) out->add_splits(v);
    for (const auto& v : List("languages")) out->add_languages(v);
    for (const auto& v : List("licenses")) out->add_licenses(v);
    for (const auto& v : List("exclude_tasks")) out->add_exclude_tasks(v);
    for (const auto& v : List("eval_splits")) out->add_eval_splits(v);
    for (const auto& v : List("eval_tasks")) out->add_eval_tasks(v);
    bool b = false;
    M3SERVE_RETURN_IF_ERROR(Bool("commercial_use_only", &b));
    out->set_commercial_use_only(b);
    b = false;
    M3SERVE_RETURN_IF_ERROR(Bool("exclude_eval_images", &b));
    out->set_exclude_eval_images(b);
    M3SERVE_ASSIGN_OR_RETURN(std::optional<std::string> modality, One("modality"));
    if (modality && !modality->empty()) {
      storage::Modality m;
      if (!storage::ParseModality(*modality, &m)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "modality: unknown value '", absl::CHexEscape(Shorten(*modality, 40)), "' (known: image, video)"));
      }
      out->set_modality(ToProto(m));
    }
    v1::HeldOut held_out = v1::HELD_OUT_UNSPECIFIED;
    M3SERVE_RETURN_IF_ERROR(Choice<v1::HeldOut>(
        "held_out", {{"any", v1::HELD_OUT_UNSPECIFIED}, {"exclude", v1::HELD_OUT_EXCLUDE}, {"only", v1::HELD_OUT_ONLY}},
        &held_out));
    out->set_held_out(held_out);
    return absl::OkStatus();
  }

  // An error response for `s`, naming the parameter its message names.
  HttpResponse Fail(const absl::Status& s, const std::string& id_parameter = "") const {
    return Error(HttpStatus(s.code()), s.code(), ParameterOf(s.message(), known, id_parameter), s.message());
  }
};

HttpApi::HttpApi(const Dataset* dataset, Metrics* metrics, HttpApiOptions options)
    : dataset_(dataset), metrics_(metrics), options_(std::move(options)),
      thumbnails_(options_.thumbnail_cache_bytes, options_.limits.max_decoded_pixels) {}

HttpResponse HttpApi::Handle(const HttpRequest& req) {
  HttpResponse r = Route(req);
  // A fixed set of endpoint names: the label's values stay few whatever the paths.
  absl::string_view p = req.path;
  const char* endpoint = p == "/metrics"                             ? "metrics"
                         : p == "/api/catalog"                       ? "catalog"
                         : p == "/api/count"                         ? "count"
                         : p == "/api/instances"                     ? "instances"
                         : absl::StartsWith(p, "/api/instances/")    ? "instance"
                         : absl::StartsWith(p, "/api/images/")       ? "image"
                         : FindWebAsset(p == "/" ? "/index.html" : p) ? "page"
                                                                      : "other";
  metrics_->HttpRequest(endpoint, r.status);
  return r;
}

HttpResponse HttpApi::Route(const HttpRequest& req) {
  if (req.method != "GET" && req.method != "HEAD") {
    HttpResponse r = Error(405, absl::StatusCode::kInvalidArgument, "", absl::StrCat("method ", req.method,
                                                                                     " not allowed; use GET"));
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  if (req.path == "/metrics") {
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_->Scrape();
    return r;
  }
  if (!options_.browser) {
    return Error(404, absl::StatusCode::kNotFound, "", "not found (this server serves only /metrics; the dataset "
                                                       "browser is off: --browser)");
  }
  if (const WebAsset* asset = FindWebAsset(req.path == "/" ? "/index.html" : req.path)) {
    HttpResponse r;
    r.content_type = asset->content_type;
    r.body.assign(asset->data, asset->size);
    r.headers.emplace_back("Cache-Control", "no-cache");
    // Dataset text is shown as text; this also stops any script the page did not ship.
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                           "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    return r;
  }
  if (!absl::StartsWith(req.path, "/api/") && req.path != "/api") {
    return Error(404, absl::StatusCode::kNotFound, "", absl::StrCat("no page at ", SanitizeUtf8(Shorten(req.path, 200))));
  }
  if (req.path == "/api" || req.path == "/api/") {  // what the page needs before it has a token
    JsonWriter w;
    w.BeginObject();
    w.Key("endpoints").BeginArray();
    for (const char* e : {"/api/catalog", "/api/count", "/api/instances", "/api/instances/{id}",
                          "/api/images/{content_hash}?size=N&instance={id}"}) {
      w.String(e);
    }
    w.EndArray();
    w.Key("grpc_port").Int(options_.grpc_port);
    w.Key("tokens_required").Bool(options_.tokens != nullptr);
    w.Key("dataset_version").String(dataset_->version());
    w.EndObject();
    return Json(w.str());
  }
  Call call{req};
  absl::StatusOr<const Identity*> identity = AuthenticateCall(
      options_.tokens.get(), req.authorization.empty() ? std::nullopt : std::optional<absl::string_view>(req.authorization));
  if (!identity.ok()) return call.Fail(identity.status());
  call.identity = *identity;

  absl::string_view path = req.path;
  if (path == "/api/catalog") return Catalog(call);
  if (path == "/api/count") return Count(call);
  if (path == "/api/instances") return Instances(call);
  if (absl::ConsumePrefix(&path, "/api/instances/")) return Instance(call, std::string(path));
  if (absl::ConsumePrefix(&path, "/api/images/")) return Image(call, std::string(path));
  return Error(404, absl::StatusCode::kNotFound, "",
               absl::StrCat("no API endpoint ", SanitizeUtf8(Shorten(req.path, 200)),
                            " (endpoints: /api/catalog, /api/count, /api/instances, /api/instances/{id}, "
                            "/api/images/{content_hash})"));
}

HttpResponse HttpApi::Catalog(Call& call) {
  if (std::string u = call.Unknown(); !u.empty()) {
    return Error(400, absl::StatusCode::kInvalidArgument, u, absl::StrCat(u, ": /api/catalog takes no parameters"));
  }
  v1::Catalog catalog;
  if (absl::Status s = ToProto(*dataset_, call.entitlement(), &catalog); !s.ok()) return call.Fail(s);
  return Json(ToJson(catalog));
}

HttpResponse HttpApi::Count(Call& call) {
  call.known = kSelectionParameters;
  if (std::string u = call.Unknown(); !u.empty()) {
    return Error(400, absl::StatusCode::kInvalidArgument, u, absl::StrCat(u, ": unknown parameter"));
  }
  v1::Selection selection;
  SelectionSpec spec;
  absl::Status s = call.Selection(&selection);
  if (s.ok()) s = FromProto(selection, &spec);
  if (!s.ok()) return call.Fail(s);
  auto sel = dataset_->Resolve(spec, call.entitlement(), call.who());
  if (!sel.ok()) return call.Fail(sel.status());
  v1::CountResponse out;
  ToProto(*sel, &out);
  return Json(ToJson(out));
}

HttpResponse HttpApi::Instances(Call& call) {
  call.known = kSelectionParameters;
  call.known.insert({"page", "page_size", "seed"});
  if (std::string u = call.Unknown(); !u.empty()) {
    return Error(400, absl::StatusCode::kInvalidArgument, u, absl::StrCat(u, ": unknown parameter"));
  }
  uint64_t page = 0, page_size = 24, seed = 0;
  absl::Status s = call.Uint("page_size", 1, options_.max_page_size, &page_size);
  if (s.ok()) s = call.Uint("page", 0, UINT64_MAX / page_size, &page);
  bool shuffled = false;  // a seed given: shuffled by it
  if (s.ok()) s = call.Uint("seed", 0, UINT64_MAX, &seed, &shuffled);
  v1::StreamRequest stream;
  if (s.ok()) s = call.Selection(stream.mutable_selection());
  if (!s.ok()) return call.Fail(s);
  stream.set_order(shuffled ? v1::ORDER_SHUFFLED : v1::ORDER_SEQUENTIAL);
  stream.set_seed(seed);
  stream.mutable_images()->set_mode(v1::IMAGE_MODE_NONE);
  stream.mutable_images()->set_max_images_per_instance(0);
  StreamSetup setup;
  // Positions are read straight from the plan; no resume token is made, so
  // the token key does not matter here.
  s = SetUpStream(stream, *dataset_, options_.limits, call.caller(), "http", &setup);
  if (!s.ok()) return call.Fail(s);
  const StreamPlan& plan = *setup.plan;
  const uint64_t total = plan.shard_size();
  const uint64_t begin = std::min(total, page * page_size);
  const uint64_t end = std::min(total, begin + page_size);
  std::vector<InstanceKey> keys;
  StreamPlan::Cursor cursor(&plan);
  for (uint64_t j = begin; j < end; ++j) {
    StreamPlan::Located at = cursor.At(j);
    keys.emplace_back(*at.group, at.ordinal);
  }
  auto got = dataset_->reader().MultiGetInstances(keys);
  JsonWriter w;
  w.BeginObject();
  w.Key("total").Uint(total);
  w.Key("page").Uint(page);
  w.Key("page_size").Uint(page_size);
  w.Key("pages").Uint((total + page_size - 1) / page_size);
  w.Key("order").String(shuffled ? "shuffled" : "sequential");
  if (shuffled) {
    w.Key("seed").Uint(seed);
  } else {
    w.Key("seed").Null();
  }
  w.Key("dataset_version").String(dataset_->version());
  w.Key("removed_by_policy").BeginArray();
  for (const auto& t : setup.removed_by_policy) w.String(t);
  w.EndArray();
  w.Key("instances").BeginArray();
  for (size_t i = 0; i < got.size(); ++i) {
    if (!got[i].ok()) return call.Fail(absl::Status(got[i].status().code(), absl::StrCat(
        "instance ", keys[i].first.task, "/", keys[i].first.split, "/", keys[i].first.lang, "/", keys[i].second,
        ": ", got[i].status().message())));
    v1::Instance x;
    if (s = BuildInstance(*dataset_, *got[i], setup.settings.build, metrics_, &x); !s.ok()) return call.Fail(s);
    x.set_instruction(Shorten(x.instruction(), options_.list_text_chars));
    x.set_inputs(Shorten(x.inputs(), options_.list_text_chars));
    x.set_outputs(Shorten(x.outputs(), options_.list_text_chars));
    x.clear_meta_json();
    x.set_shard_position(begin + i);
    w.Raw(ToJson(x));
  }
  w.EndArray();
  w.EndObject();
  M3_LOG(INFO) << "http instances peer=" << call.req.peer << " identity=" << (call.identity ? call.who() : "-")
               << " positions=" << begin << ".." << end << " of " << total
               << " licenses=[" << absl::StrJoin(setup.licenses, "|") << "]";
  return Json(w.str());
}

std::optional<HttpResponse> HttpApi::Read(Call& call, const std::string& id, const std::string& parameter,
                                          storage::Instance* out, BuildOptions* build) {
  // The id is checked as a GetInstances id is, with every image's metadata and no bytes.
  v1::GetInstancesRequest get_request;
  get_request.add_ids(id);
  get_request.mutable_images()->set_mode(v1::IMAGE_MODE_NONE);
  get_request.mutable_images()->set_max_images_per_instance(0);
  GetSettings get;
  absl::Status s = FromProto(get_request, options_.limits, &get);
  if (s.ok()) s = dataset_->CheckTaskAllowed(get.keys[0].first.task, call.entitlement(), call.who(), parameter);
  if (!s.ok()) return call.Fail(s, parameter);
  auto got = dataset_->reader().MultiGetInstances(get.keys);
  if (dataset_->Task(get.keys[0].first.task) == nullptr || absl::IsNotFound(got[0].status())) {
    return Error(404, absl::StatusCode::kNotFound, parameter,
                 absl::StrCat(parameter, ": no instance ", SanitizeUtf8(Shorten(id, 200)), " in the store"));
  }
  if (!got[0].ok()) return Error(500, got[0].status().code(), parameter, got[0].status().message());
  *out = std::move(*got[0]);
  *build = get.build;
  return std::nullopt;
}

HttpResponse HttpApi::Instance(Call& call, const std::string& id) {
  if (std::string u = call.Unknown(); !u.empty()) {
    return Error(400, absl::StatusCode::kInvalidArgument, u, absl::StrCat(u, ": unknown parameter"));
  }
  call.known = {"id"};
  storage::Instance stored;
  BuildOptions build;
  if (std::optional<HttpResponse> refused = Read(call, id, "id", &stored, &build)) return *refused;
  const std::string task = stored.group.task;
  const storage::TaskInfo* info = dataset_->Task(task);
  absl::Status s;
  v1::Instance x;
  if (s = BuildInstance(*dataset_, stored, build, metrics_, &x); !s.ok()) return call.Fail(s);
  v1::TaskInfo task_info;
  ToProto(*dataset_, task, *info, &task_info);
  JsonWriter w;
  w.BeginObject();
  w.Key("instance").Raw(ToJson(x));
  w.Key("task").Raw(ToJson(task_info));
  w.Key("source").BeginObject();
  w.Key("file").String(SanitizeUtf8(stored.source.file));
  w.Key("line").Uint(stored.source.line);
  w.Key("target").Uint(stored.source.target);
  w.EndObject();
  w.Key("instruction_from_pool").Bool(stored.instruction.empty());
  w.Key("instruction_pool").BeginArray();
  if (const auto* pool = dataset_->Pool(task, x.language())) {
    for (const auto& p : *pool) w.String(SanitizeUtf8(p));
  }
  w.EndArray();
  w.Key("dataset_version").String(dataset_->version());
  w.EndObject();
  M3_LOG(INFO) << "http instance peer=" << call.req.peer << " identity=" << (call.identity ? call.who() : "-")
               << " id=" << x.id() << " license=" << info->license;
  return Json(w.str());
}

HttpResponse HttpApi::Image(Call& call, const std::string& hex) {
  call.known = {"size", "instance"};
  if (std::string u = call.Unknown(); !u.empty()) {
    return Error(400, absl::StatusCode::kInvalidArgument, u, absl::StrCat(u, ": unknown parameter"));
  }
  call.known.insert("hash");  // the path's part, named in errors
  const std::optional<Hash128> hash = Hash128::FromHex(hex);
  if (!hash) {
    return Error(400, absl::StatusCode::kInvalidArgument, "hash",
                 absl::StrCat("hash: '", absl::CHexEscape(Shorten(hex, 64)),
                              "' is not a content hash (32 hex digits, as in an instance's images[].content_hash)"));
  }
  uint64_t size = 0;
  absl::Status s = call.Uint("size", 0, kMaxThumbnailSide, &size);
  if (s.ok() && size != 0 && size < kMinThumbnailSide) {
    s = absl::InvalidArgumentError(absl::StrCat("size: ", size, " is below the smallest thumbnail (",
                                                kMinThumbnailSide, "); 0 or none: the stored image"));
  }
  absl::StatusOr<std::optional<std::string>> instance = call.One("instance");
  if (s.ok()) s = instance.status();
  if (!s.ok()) return call.Fail(s);
  // An image is shown to whoever sees an instance that shows it: a caller who
  // does not see every task names that instance.
  if (!instance->has_value() && !dataset_->AdmitsAll(call.entitlement())) {
    return Error(400, absl::StatusCode::kInvalidArgument, "instance",
                 "instance: required (the id of an instance that shows the image) when the license policy or "
                 "your token does not admit every task");
  }
  if (instance->has_value()) {
    call.known = {"instance"};
    storage::Instance shows;
    BuildOptions unused;
    if (std::optional<HttpResponse> refused = Read(call, **instance, "instance", &shows, &unused)) return *refused;
    if (std::find(shows.images.begin(), shows.images.end(), *hash) == shows.images.end()) {
      return Error(400, absl::StatusCode::kInvalidArgument, "instance",
                   absl::StrCat("instance: ", shows.Id(), " does not show image ", hash->Hex()));
    }
  }
  auto meta = dataset_->reader().GetImageMeta(*hash);
  if (!meta.ok()) {
    return Error(absl::IsNotFound(meta.status()) ? 404 : 500, meta.status().code(), "hash",
                 absl::StrCat("hash: ", absl::IsNotFound(meta.status()) ? "no image " : "image ", hash->Hex(),
                              absl::IsNotFound(meta.status()) ? " in the store" : absl::StrCat(": ", meta.status().message())));
  }
  const std::string etag = absl::StrCat("\"", hash->Hex(), "-", size, "\"");
  HttpResponse r;
  // Content-addressed: the bytes of a URL never change.
  r.headers.emplace_back("Cache-Control", absl::StrCat(options_.tokens ? "private" : "public",
                                                       ", max-age=31536000, immutable"));
  r.headers.emplace_back("ETag", etag);
  if (call.req.if_none_match == etag) {
    r.status = 304;
    r.content_type = size ? "image/jpeg" : ImageContentType(meta->format);
    return r;
  }
  if (size == 0) {
    auto bytes = dataset_->reader().GetImage(*hash);
    if (!bytes.ok()) return Error(500, bytes.status().code(), "hash", bytes.status().message());
    r.content_type = ImageContentType(meta->format);
    r.body = std::move(*bytes);
    return r;
  }
  auto jpeg = thumbnails_.Get(dataset_->reader(), *hash, static_cast<uint32_t>(size));
  if (!jpeg.ok()) {
    const int status = absl::IsFailedPrecondition(jpeg.status()) ? 400 : 500;
    return Error(status, jpeg.status().code(), status == 400 ? "size" : "hash", jpeg.status().message());
  }
  r.content_type = "image/jpeg";
  r.body = **jpeg;
  return r;
}

}  // namespace m3serve::server
