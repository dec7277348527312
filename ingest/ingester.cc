#include "ingest/ingester.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include <simdjson.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/json_writer.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "ingest/line_reader.h"

namespace m3serve::ingest {
namespace {

namespace dom = simdjson::dom;
using Clock = std::chrono::steady_clock;

constexpr char kLfsPointerPrefix[] = "version https://git-lfs.github.com/spec/";

// ---------------------------------------------------------------------------
// Per-file state shared by the reader, the workers and the writer.

struct JobState {
  const FileJob* job = nullptr;
  FileReport* report = nullptr;
  Mapping mapping = Mapping::kGeneric;
  std::shared_ptr<const TaskAux> aux;
  std::shared_ptr<const EnglishRows> english;
  std::vector<std::pair<std::string, std::vector<std::string>>> pools;  // (lang, instructions)
  std::string fingerprint;
  storage::FileProgress progress;  // owned by the writer after the first item
};

struct LineResult {
  enum Kind { kOk, kRejected, kEmpty } kind = kOk;
  uint64_t line = 0;
  std::string reason;
  std::vector<DraftInstance> instances;
};

struct WorkItem {
  uint64_t seq = 0;
  JobState* job = nullptr;
  bool first_of_file = false;
  bool last_of_file = false;
  std::string file_error;  // the whole file is rejected (line 0)
  LineChunk chunk;
  std::vector<LineResult> results;
  size_t budget = 0;  // bytes charged against the read-ahead limit
};

std::string JsonErrorReason(simdjson::error_code err) {
  switch (err) {
    case simdjson::UTF8_ERROR: return "invalid UTF-8 in the line";
    case simdjson::DEPTH_ERROR: return "invalid JSON: nested deeper than 1024 levels";
    case simdjson::EMPTY: return "invalid JSON: no value";
    default:
      return absl::StrCat("invalid JSON (truncated or malformed): ", simdjson::error_message(err));
  }
}

// ---------------------------------------------------------------------------
// Instruction pools and side tables, loaded once per file path.

void LoadPool(const PoolFile& pool, const std::string& task, std::vector<std::string>* out,
              std::vector<std::string>* warnings) {
  dom::parser parser;
  if (absl::EndsWith(pool.path, ".json")) {
    dom::element doc;
    if (auto err = parser.load(pool.path).get(doc)) {
      warnings->push_back(absl::StrCat(pool.path, ": not valid JSON (", simdjson::error_message(err),
                                       "); no instruction pool for ", task));
      return;
    }
    dom::array arr;
    if (doc.get_array().get(arr)) {
      dom::object obj;
      if (doc.get_object().get(obj) || obj["instructions"].get_array().get(arr)) {
        warnings->push_back(absl::StrCat(pool.path, ": expected a JSON array of strings"));
        return;
      }
    }
    size_t i = 0;
    for (dom::element e : arr) {
      std::string_view s;
      if (e.get_string().get(s)) {
        warnings->push_back(absl::StrCat(pool.path, ": entry ", i, " is not a string; skipped"));
      } else {
        out->emplace_back(s);
      }
      ++i;
    }
    return;
  }
  // JSONL: one JSON string, or an object with an "instruction" field, per line.
  auto reader = LineReader::Open(pool.path, 0, 0, 64u << 20);
  if (!reader.ok()) {
    warnings->push_back(absl::StrCat("cannot read ", pool.path, ": ", reader.status().message()));
    return;
  }
  LineChunk chunk;
  while (!(*reader)->eof()) {
    if (!(*reader)->Next(1 << 20, 4096, &chunk).ok()) break;
    for (const auto& l : chunk.lines) {
      absl::string_view text = chunk.text(l);
      if (text.find_first_not_of(" \t") == absl::string_view::npos) continue;
      dom::element e;
      if (parser.parse(text.data(), text.size(), false).get(e)) {
        warnings->push_back(absl::StrCat(pool.path, ":", l.number, ": not valid JSON; skipped"));
        continue;
      }
      std::string_view s;
      if (!e.get_string().get(s)) {
        out->emplace_back(s);
        continue;
      }
      dom::object obj;
      if (!e.get_object().get(obj)) {
        // {"instruction": "..."}, {"instructions": [...]}, or {"<task>": "..." | [...]};
        // a "task" / "dataset" field naming another task skips the line.
        std::string_view t;
        if ((!obj["task"].get_string().get(t) || !obj["dataset"].get_string().get(t)) && t != task) {
          continue;
        }
        size_t before = out->size();
        auto take = [&](dom::element v) {
          std::string_view one;
          dom::array many;
          if (!v.get_string().get(one)) {
            out->emplace_back(one);
          } else if (!v.get_array().get(many)) {
            for (dom::element item : many) {
              if (!item.get_string().get(one)) out->emplace_back(one);
            }
          }
        };
        for (const char* key : {"instruction", "instructions"}) {
          dom::element v;
          if (!obj[key].get(v)) take(v);
        }
        dom::element v;
        if (!obj[std::string_view(task)].get(v)) take(v);
        if (out->size() > before) continue;
      }
      warnings->push_back(absl::StrCat(pool.path, ":", l.number,
                                       ": expected a string or an object with \"instruction\"; skipped"));
    }
  }
}

std::shared_ptr<const EnglishRows> LoadEnglishRows(const FileJob& job, const IngestOptions& o) {
  auto rows = std::make_shared<EnglishRows>();
  rows->rel_path = job.raw_rel_path;
  auto reader = LineReader::Open(job.raw_path, 0, 0, o.max_line_bytes);
  if (!reader.ok()) {
    rows->file_error = std::string(reader.status().message());
    return rows;
  }
  dom::parser parser;
  LineChunk chunk;
  while (!(*reader)->eof()) {
    absl::Status s = (*reader)->Next(o.chunk_bytes, o.chunk_lines, &chunk);
    if (!s.ok()) {
      rows->file_error = std::string(s.message());
      break;
    }
    for (const auto& l : chunk.lines) {
      EnglishRows::Row& row = rows->by_line[l.number];
      if (l.oversize) {
        row.error = "line above --max-line-bytes";
        continue;
      }
      absl::string_view text = chunk.text(l);
      if (text.find_first_not_of(" \t") == absl::string_view::npos) {
        rows->by_line.erase(l.number);
        continue;
      }
      dom::element e;
      if (auto err = parser.parse(text.data(), text.size(), false).get(e)) {
        row.error = JsonErrorReason(err);
        continue;
      }
      dom::object obj;
      if (e.get_object().get(obj)) {
        row.error = "not a JSON object";
        continue;
      }
      absl::Status is = ExtractImages(obj, o.images, &row.images);
      if (!is.ok()) row.error = std::string(is.message());
      dom::element id;
      std::string_view sid;
      int64_t iid;
      if (!obj["id"].get(id)) {
        if (!id.get_string().get(sid)) rows->line_of_id[std::string(sid)] = l.number;
        else if (!id.get_int64().get(iid)) rows->line_of_id[absl::StrCat(iid)] = l.number;
      }
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------
// Progress display.

class ProgressPrinter {
 public:
  explicit ProgressPrinter(ProgressMode mode) : start_(Clock::now()), last_(start_) {
    if (mode == ProgressMode::kAuto) mode = ::isatty(STDERR_FILENO) ? ProgressMode::kBar : ProgressMode::kLog;
    mode_ = mode;
  }
  void Update(uint64_t done, uint64_t total, uint64_t rejects, bool force) {
    if (mode_ == ProgressMode::kNone) return;
    // In log mode a final line is only worth printing after periodic ones.
    if (force && mode_ == ProgressMode::kLog && !logged_) return;
    total_ = std::max(total, done);
    auto now = Clock::now();
    double since = std::chrono::duration<double>(now - last_).count();
    if (!force && since < (mode_ == ProgressMode::kBar ? 0.25 : 10.0)) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0 ? done / secs : 0;
    double frac = total_ ? std::min(1.0, double(done) / double(total_)) : 1.0;
    double eta = rate > 0 && total_ > done ? (total_ - done) / rate : 0;
    std::string line = absl::StrFormat("%5.1f%% %s / %s  %s/s  ETA %s  rejected %d", frac * 100,
                                       Bytes(done), Bytes(total_), Bytes(uint64_t(rate)),
                                       Duration(eta), rejects);
    if (mode_ == ProgressMode::kBar) {
      int width = 30, fill = static_cast<int>(frac * width);
      std::string bar = "[" + std::string(fill, '#') + std::string(width - fill, '.') + "] ";
      std::fprintf(stderr, "\r%s%s\x1b[K", bar.c_str(), line.c_str());
      bar_drawn_ = true;
    } else {
      M3_LOG(INFO) << "ingest progress: " << line;
      logged_ = true;
    }
  }
  void Finish() {
    if (bar_drawn_) std::fprintf(stderr, "\n");
  }
  static std::string Bytes(uint64_t b) {
    const char* units[] = {"B", "KB", "MB", "GB", "TB"};
    double v = double(b);
    int u = 0;
    while (v >= 1000 && u < 4) {
      v /= 1000;
      ++u;
    }
    return u == 0 ? absl::StrFormat("%.0f %s", v, units[u]) : absl::StrFormat("%.1f %s", v, units[u]);
  }
  static std::string Duration(double s) {
    int t = static_cast<int>(s);
    return absl::StrFormat("%d:%02d:%02d", t / 3600, (t / 60) % 60, t % 60);
  }

 private:
  ProgressMode mode_;
  uint64_t total_ = 0;
  Clock::time_point start_, last_;
  bool bar_drawn_ = false;
  bool logged_ = false;
};

// ---------------------------------------------------------------------------
// The pipeline.

class Pipeline {
 public:
  Pipeline(storage::Store* store, const IngestOptions& options, int workers)
      : store_(store), options_(options), workers_(workers) {}

  absl::Status Run(std::vector<JobState>* jobs, IngestReport* report);

 private:
  void ReaderLoop(std::vector<JobState>* jobs);
  void WorkerLoop();
  void ProcessLines(WorkItem* item, dom::parser* parser);
  absl::Status WriteItem(WorkItem* item, IngestReport* report);
  absl::Status Commit(bool force);
  absl::Status FlushRejects();
  absl::Status PrepareJob(JobState* js, bool* skip);
  void Emit(std::unique_ptr<WorkItem> item);

  storage::Store* store_;
  const IngestOptions& options_;
  int workers_;

  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_, space_cv_;
  std::deque<std::unique_ptr<WorkItem>> work_;
  std::map<uint64_t, std::unique_ptr<WorkItem>> done_;
  uint64_t next_seq_ = 0;
  bool reader_done_ = false;
  bool abort_ = false;
  size_t inflight_bytes_ = 0, inflight_items_ = 0;
  std::atomic<uint64_t> total_bytes_{0};

  // Caches (reader thread only).
  std::map<std::string, std::shared_ptr<const TaskAux>> aux_cache_;
  std::shared_ptr<const EnglishRows> english_;
  std::string english_path_;
  std::map<std::string, std::vector<std::string>> pool_cache_;
  std::vector<std::string> reader_warnings_;

  // Writer state.
  storage::StoreWriteBatch batch_;
  std::map<storage::GroupKey, uint64_t> counts_;
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> pools_;
  absl::flat_hash_set<Hash128> known_images_;
  uint64_t unique_images_ = 0;
  uint64_t processed_bytes_ = 0;
  std::vector<std::string> pending_rejects_;
  std::unique_ptr<std::ofstream> rejects_out_;
};

absl::Status Pipeline::PrepareJob(JobState* js, bool* skip) {
  const FileJob& job = *js->job;
  FileReport& rep = *js->report;
  *skip = false;
  M3SERVE_ASSIGN_OR_RETURN(std::optional<storage::FileProgress> stored,
                           store_->GetProgress(job.ProgressKey()));
  auto fp = FileFingerprint(job.path);
  if (fp.ok()) js->fingerprint = *fp;
  if (stored.has_value()) {
    if (fp.ok() && stored->fingerprint != *fp) {
      rep.status = "failed";
      return absl::FailedPreconditionError(absl::StrCat(
          "file changed since it was ingested into this store (", stored->fingerprint, " -> ", *fp,
          "); ingest it into a new store"));
    }
    if (stored->complete) {
      rep.status = "already ingested";
      *skip = true;
      return absl::OkStatus();
    }
    js->progress = *stored;
    rep.status = "resumed";
  } else {
    js->progress = storage::FileProgress{};
    js->progress.fingerprint = fp.ok() ? *fp : "";
    rep.status = "ingested";
  }
  js->mapping = job.format == RowFormat::kM3it80Translated ? Mapping::kTranslated
                : job.format == RowFormat::kCanonical     ? Mapping::kGeneric
                                                          : MappingForTask(job.group.task, job.variant);
  if (js->mapping == Mapping::kImagenet || js->mapping == Mapping::kSs) {
    auto& cached = aux_cache_[job.task_dir];
    if (!cached) {
      auto aux = LoadTaskAux(job.task_dir);
      if (!aux.ok()) {
        reader_warnings_.push_back(std::string(aux.status().message()));
        cached = std::make_shared<TaskAux>();
      } else {
        cached = std::make_shared<TaskAux>(std::move(*aux));
      }
    }
    js->aux = cached;
  }
  if (js->mapping == Mapping::kTranslated) {
    if (english_path_ != job.raw_path) {
      english_ = LoadEnglishRows(job, options_);
      english_path_ = job.raw_path;
      if (!english_->file_error.empty()) {
        reader_warnings_.push_back(absl::StrCat("cannot read English rows ", job.raw_rel_path, ": ",
                                                english_->file_error));
      }
    }
    js->english = english_;
  }
  for (const auto& pool : job.pools) {
    std::string key = pool.path + "|" + job.group.task;
    auto it = pool_cache_.find(key);
    if (it == pool_cache_.end()) {
      std::vector<std::string> list;
      LoadPool(pool, job.group.task, &list, &reader_warnings_);
      it = pool_cache_.emplace(key, std::move(list)).first;
    }
    js->pools.emplace_back(pool.lang, it->second);
  }
  return absl::OkStatus();
}

void Pipeline::Emit(std::unique_ptr<WorkItem> item) {
  std::unique_lock<std::mutex> lock(mu_);
  item->budget = item->chunk.buf.size() + 1024;
  space_cv_.wait(lock, [&] {
    return abort_ || inflight_items_ == 0 ||
           (inflight_bytes_ + item->budget <= options_.max_inflight_bytes &&
            inflight_items_ < static_cast<size_t>(4 * workers_ + 4));
  });
  if (abort_) return;
  inflight_bytes_ += item->budget;
  ++inflight_items_;
  work_.push_back(std::move(item));
  work_cv_.notify_one();
}

void Pipeline::ReaderLoop(std::vector<JobState>* jobs) {
  uint64_t seq = 0;
  for (JobState& js : *jobs) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (abort_) break;
    }
    const FileJob& job = *js.job;
    bool skip = false;
    absl::Status prep = PrepareJob(&js, &skip);
    auto file_reject = [&](std::string reason) {
      auto item = std::make_unique<WorkItem>();
      item->seq = seq++;
      item->job = &js;
      item->first_of_file = item->last_of_file = true;
      item->file_error = std::move(reason);
      Emit(std::move(item));
    };
    if (!prep.ok()) {
      file_reject(std::string(prep.message()));
      continue;
    }
    if (skip) continue;
    std::error_code ec;
    std::filesystem::path p(job.path);
    if (std::filesystem::is_directory(p, ec)) {
      file_reject("is a directory, not a JSONL file");
      continue;
    }
    uint64_t size = std::filesystem::file_size(p, ec);
    if (!ec && size == 0) {
      file_reject("file is empty (0 bytes); a Git LFS object that was not fetched?");
      continue;
    }
    auto reader = LineReader::Open(job.path, js.progress.offset, js.progress.line, options_.max_line_bytes);
    if (!reader.ok()) {
      file_reject(std::string(reader.status().message()));
      continue;
    }
    total_bytes_ += size > js.progress.offset ? size - js.progress.offset : 0;
    bool first = true;
    do {
      auto item = std::make_unique<WorkItem>();
      item->seq = seq++;
      item->job = &js;
      item->first_of_file = first;
      absl::Status s = (*reader)->Next(options_.chunk_bytes, options_.chunk_lines, &item->chunk);
      if (!s.ok()) {
        item->file_error = std::string(s.message());
        item->last_of_file = true;
        Emit(std::move(item));
        break;
      }
      if (first && js.progress.offset == 0 && !item->chunk.lines.empty() &&
          absl::StartsWith(item->chunk.text(item->chunk.lines[0]), kLfsPointerPrefix)) {
        item->chunk.lines.clear();
        item->file_error = "file is a Git LFS pointer, not the data: run `git lfs pull` in the repository";
        item->last_of_file = true;
        Emit(std::move(item));
        break;
      }
      item->last_of_file = item->chunk.eof;
      first = false;
      Emit(std::move(item));
    } while (!(*reader)->eof());
  }
  std::lock_guard<std::mutex> lock(mu_);
  reader_done_ = true;
  work_cv_.notify_all();
  done_cv_.notify_all();
}

void Pipeline::ProcessLines(WorkItem* item, dom::parser* parser) {
  const JobState& js = *item->job;
  RowContext ctx;
  ctx.mapping = js.mapping;
  ctx.aux = js.aux.get();
  ctx.english = js.english.get();
  ctx.images = options_.images;
  item->results.resize(item->chunk.lines.size());
  for (size_t i = 0; i < item->chunk.lines.size(); ++i) {
    const LineChunk::Line& l = item->chunk.lines[i];
    LineResult& r = item->results[i];
    r.line = l.number;
    if (l.oversize) {
      r.kind = LineResult::kRejected;
      r.reason = absl::StrCat("line is ", l.oversize, " bytes, above --max-line-bytes ",
                              options_.max_line_bytes);
      continue;
    }
    absl::string_view text = item->chunk.text(l);
    if (text.find_first_not_of(" \t") == absl::string_view::npos) {
      r.kind = LineResult::kEmpty;
      continue;
    }
    dom::element row;
    if (auto err = parser->parse(text.data(), text.size(), false).get(row)) {
      r.kind = LineResult::kRejected;
      r.reason = JsonErrorReason(err);
    } else {
      ctx.line = l.number;
      absl::Status s = MapRow(row, ctx, &r.instances);
      if (!s.ok()) {
        r.kind = LineResult::kRejected;
        r.reason = std::string(s.message());
        r.instances.clear();
      }
    }
    if (text.size() > (64u << 20)) *parser = dom::parser();  // give back a huge buffer
  }
  // The line bytes are no longer needed; keep only the metadata.
  item->chunk.buf.clear();
  item->chunk.buf.shrink_to_fit();
}

void Pipeline::WorkerLoop() {
  dom::parser parser;
  while (true) {
    std::unique_ptr<WorkItem> item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return abort_ || !work_.empty() || reader_done_; });
      if (abort_ || (work_.empty() && reader_done_)) return;
      item = std::move(work_.front());
      work_.pop_front();
    }
    if (item->file_error.empty()) ProcessLines(item.get(), &parser);
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t seq = item->seq;
    done_.emplace(seq, std::move(item));
    done_cv_.notify_all();
  }
}

absl::Status Pipeline::FlushRejects() {
  if (pending_rejects_.empty()) return absl::OkStatus();
  if (!rejects_out_) {
    rejects_out_ = std::make_unique<std::ofstream>(options_.rejects_path, std::ios::app);
    if (!*rejects_out_) {
      return absl::UnavailableError(absl::StrCat("cannot open rejects file ", options_.rejects_path));
    }
  }
  for (const auto& r : pending_rejects_) *rejects_out_ << r << '\n';
  rejects_out_->flush();
  pending_rejects_.clear();
  if (!*rejects_out_) {
    return absl::UnavailableError(absl::StrCat("cannot write rejects file ", options_.rejects_path));
  }
  return absl::OkStatus();
}

absl::Status Pipeline::Commit(bool force) {
  if (batch_.Count() == 0) return FlushRejects();
  if (!force && batch_.ApproximateBytes() < options_.commit_bytes) return absl::OkStatus();
  M3SERVE_RETURN_IF_ERROR(store_->Write(&batch_));
  // Rejects are written after the rows they sit between are durable, so a
  // resumed run neither repeats nor loses a reject record. A bulk-load store
  // has no WAL, so durable means flushed; rejects are rare, and so is this.
  if (!pending_rejects_.empty()) M3SERVE_RETURN_IF_ERROR(store_->Flush());
  return FlushRejects();
}

absl::Status Pipeline::WriteItem(WorkItem* item, IngestReport* report) {
  JobState& js = *item->job;
  FileReport& rep = *js.report;
  const FileJob& job = *js.job;
  auto reject = [&](uint64_t line, const std::string& reason) {
    JsonWriter w;
    w.BeginObject()
        .Key("file").String(job.path)
        .Key("line").Uint(line)
        .Key("task").String(job.group.task)
        .Key("split").String(job.group.split)
        .Key("lang").String(job.group.lang)
        .Key("reason").String(reason)
        .EndObject();
    pending_rejects_.push_back(w.Release());
    ++rep.rejected;
    ++report->rejected;
  };
  if (!item->file_error.empty() && item->chunk.lines.empty()) {
    reject(0, item->file_error);
    rep.status = "failed";
    return absl::OkStatus();
  }
  if (item->first_of_file) {
    batch_.PutTask(job.task);
    for (const auto& [lang, list] : js.pools) {
      auto& merged = pools_[{job.group.task, lang}];
      size_t before = merged.size();
      for (const auto& s : list) {
        if (std::find(merged.begin(), merged.end(), s) == merged.end()) merged.push_back(s);
      }
      if (merged.size() != before) batch_.PutPool(job.group.task, lang, merged);
    }
  }
  uint64_t& count = counts_[job.group];
  const uint64_t count_before = count;
  const uint64_t images_before = unique_images_;
  for (LineResult& r : item->results) {
    ++rep.lines;
    ++report->lines;
    if (r.kind == LineResult::kEmpty) {
      ++rep.empty_lines;
      ++report->empty_lines;
      continue;
    }
    if (r.kind == LineResult::kRejected) {
      reject(r.line, r.reason);
      ++js.progress.rejected;
      continue;
    }
    ++rep.rows;
    ++report->rows;
    ++js.progress.ingested_rows;
    uint32_t target = 0;
    for (DraftInstance& d : r.instances) {
      storage::Instance x;
      x.group = job.group;
      x.ordinal = count++;
      x.instruction = std::move(d.instruction);
      x.inputs = std::move(d.inputs);
      x.outputs = std::move(d.outputs);
      x.meta_json = std::move(d.meta_json);
      x.template_vars = std::move(d.template_vars);
      x.source = {job.rel_path, r.line, target++};
      x.images.reserve(d.images.size());
      for (const ImagePtr& img : d.images) {
        x.images.push_back(img->hash);
        if (known_images_.contains(img->hash)) continue;
        M3SERVE_ASSIGN_OR_RETURN(bool exists, store_->HasImage(img->hash));
        known_images_.insert(img->hash);
        if (exists) continue;
        batch_.PutImage(img->hash, img->meta, img->bytes);
        ++unique_images_;
        ++report->new_images;
      }
      batch_.PutInstance(x);
      ++rep.instances;
      ++report->instances;
      ++js.progress.instances;
    }
    r.instances.clear();
  }
  if (!item->chunk.lines.empty()) {
    js.progress.offset = item->chunk.end_offset;
    js.progress.line = item->chunk.lines.back().number;
  }
  if (!item->file_error.empty()) {
    // A read error part-way: keep what was read, leave the file resumable.
    reject(js.progress.line + 1, item->file_error);
    rep.status = "failed";
  } else {
    js.progress.complete = item->last_of_file;
  }
  if (!js.fingerprint.empty()) js.progress.fingerprint = js.fingerprint;
  batch_.PutProgress(job.ProgressKey(), js.progress);
  if (count != count_before) batch_.PutCount(job.group, count);
  if (unique_images_ != images_before) batch_.PutImageCount(unique_images_);
  processed_bytes_ += item->chunk.bytes;
  report->bytes_read += item->chunk.bytes;
  return Commit(false);
}

absl::Status Pipeline::Run(std::vector<JobState>* jobs, IngestReport* report) {
  M3SERVE_ASSIGN_OR_RETURN(storage::Catalog catalog, store_->ReadCatalog());
  // A batch is committed once it passes commit_bytes; room for one more large
  // row avoids regrowing (and copying) the buffer.
  batch_.Reserve(options_.commit_bytes + options_.commit_bytes / 4);
  counts_ = catalog.counts;
  pools_ = catalog.pools;
  unique_images_ = catalog.unique_images;

  std::thread reader([&] { ReaderLoop(jobs); });
  std::vector<std::thread> workers;
  for (int i = 0; i < workers_; ++i) workers.emplace_back([&] { WorkerLoop(); });

  ProgressPrinter progress(options_.progress);
  absl::Status status;
  while (true) {
    std::unique_ptr<WorkItem> item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock, [&] {
        return done_.count(next_seq_) > 0 || (reader_done_ && work_.empty() && inflight_items_ == 0);
      });
      auto it = done_.find(next_seq_);
      if (it == done_.end()) break;
      item = std::move(it->second);
      done_.erase(it);
      ++next_seq_;
    }
    status = WriteItem(item.get(), report);
    {
      std::lock_guard<std::mutex> lock(mu_);
      inflight_bytes_ -= item->budget;
      --inflight_items_;
      space_cv_.notify_all();
      if (!status.ok()) {
        abort_ = true;
        work_cv_.notify_all();
      }
    }
    if (!status.ok()) break;
    progress.Update(processed_bytes_, total_bytes_.load(), report->rejected, false);
  }
  reader.join();
  for (auto& w : workers) w.join();
  if (status.ok()) status = Commit(true);
  progress.Update(processed_bytes_, total_bytes_.load(), report->rejected, true);
  progress.Finish();
  for (auto& w : reader_warnings_) report->warnings.push_back(w);
  return status;
}

}  // namespace

absl::StatusOr<IngestReport> Ingest(storage::Store* store, const TaskRegistry& registry,
                                    const IngestOptions& options_in) {
  IngestOptions options = options_in;
  if (options.rejects_path.empty()) options.rejects_path = store->path() + "/rejects.jsonl";
  if (options.sources.empty()) return absl::InvalidArgumentError("no SOURCE given");
  const auto start = Clock::now();
  M3SERVE_ASSIGN_OR_RETURN(Discovery discovery,
                           DiscoverSources(options.sources, registry, options.discover));
  IngestReport report;
  report.rejects_path = options.rejects_path;
  report.warnings = discovery.warnings;
  if (discovery.jobs.empty()) {
    report.warnings.push_back("no row files to ingest (check SOURCE and --tasks)");
  }
  report.files.resize(discovery.jobs.size());
  std::vector<JobState> jobs(discovery.jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    jobs[i].job = &discovery.jobs[i];
    jobs[i].report = &report.files[i];
    report.files[i].path = discovery.jobs[i].path;
    report.files[i].rel_path = discovery.jobs[i].rel_path;
    report.files[i].group = discovery.jobs[i].group;
  }
  int workers = options.threads > 0 ? options.threads
                                    : std::max(1u, std::thread::hardware_concurrency());
  Pipeline pipeline(store, options, workers);
  absl::Status s = pipeline.Run(&jobs, &report);
  if (s.ok()) s = store->Flush();
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (!s.ok()) return s;
  return report;
}

}  // namespace m3serve::ingest
