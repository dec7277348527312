#include "ingest/ingester.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <simdjson.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json_writer.h"
#include "common/status_macros.h"
#include "ingest/english_rows.h"
#include "ingest/instruction_pool.h"
#include "ingest/job_inputs.h"
#include "ingest/line_reader.h"
#include "ingest/rejects_file.h"
#include "ingest/source_check.h"
#include "storage/image_index.h"

namespace m3serve::ingest {

absl::string_view FileStatusName(FileStatus status) {
  switch (status) {
    case FileStatus::kIngested: return "ingested";
    case FileStatus::kResumed: return "resumed";
    case FileStatus::kAlreadyIngested: return "already ingested";
    case FileStatus::kReingested: return "re-ingested (changed)";
    case FileStatus::kChanged: return "changed while read";
    case FileStatus::kFailed: return "failed";
  }
  return "unknown";
}

namespace {

namespace dom = simdjson::dom;
using Clock = std::chrono::steady_clock;

constexpr char kLfsPointerPrefix[] = "version https://git-lfs.github.com/spec/";

// A reject record for a file other than the row file (an instruction pool).
struct SideReject {
  std::string path;
  std::string reason;
};

// ---------------------------------------------------------------------------
// Per-file state shared by the reader, the workers and the writer.

struct JobState {
  const FileJob* job = nullptr;
  FileReport* report = nullptr;
  SourceDecision decision;
  Mapping mapping = Mapping::kGeneric;
  std::shared_ptr<const TaskAux> aux;
  std::shared_ptr<const EnglishRows> english;
  std::vector<std::pair<std::string, std::vector<std::string>>> pools;  // (lang, instructions)
  InstructionSource instructions;
  std::vector<SideReject> side_rejects;  // written with the file's first item
  std::string refuse;                    // the file is rejected with this reason, unread
  SourceStat stat;                       // when the reader opened the file
  int64_t opened_ns = 0;
  storage::FileProgress progress;  // owned by the writer after the first item
  // The side files as this run found them (PlanSources), recorded with the
  // file's progress.
  std::vector<storage::SideFileState> side_files;
};

struct LineResult {
  enum Kind { kOk, kRejected, kEmpty } kind = kOk;
  uint64_t line = 0;
  std::string reason;
  std::vector<DraftInstance> instances;  // images moved out once stored
  std::vector<std::vector<Hash128>> images;  // per instance, in order
};

struct WorkItem {
  uint64_t seq = 0;
  JobState* job = nullptr;
  bool first_of_file = false;
  bool last_of_file = false;
  std::string file_error;   // the whole file is rejected (line 0), or a read error part-way
  std::string fingerprint;  // last item: the file's content identity
  std::string changed;      // last item: how the file changed while it was read
  LineChunk chunk;
  std::vector<LineResult> results;
  uint64_t new_images = 0;  // images this item's worker stored first
  size_t budget = 0;  // bytes charged against the read-ahead limit
};

// ---------------------------------------------------------------------------
// The pipeline.

class Pipeline {
 public:
  Pipeline(storage::Store* store, const IngestOptions& options, int workers,
           std::map<std::pair<std::string, std::string>, std::vector<std::string>> stored_pools)
      : store_(store), options_(options), workers_(workers), stored_pools_(std::move(stored_pools)) {}

  absl::Status Run(std::vector<JobState>* jobs, IngestReport* report);

 private:
  void ReaderLoop(std::vector<JobState>* jobs);
  void LoadEnglishAhead(const std::vector<JobState>& jobs, size_t from);
  void ReadFile(JobState* js, uint64_t* seq);
  void WorkerLoop();
  void ProcessLines(WorkItem* item, dom::parser* parser);
  void RecycleBuffer(ChunkBuffer* buf);
  ChunkBuffer SpareBuffer();
  absl::Status StoreImages(WorkItem* item, storage::ImageWriter* images);
  absl::Status WriteItem(WorkItem* item, IngestReport* report);
  absl::Status Commit(bool force);
  absl::Status OpenRejects(bool only_to_cut);
  absl::Status PrepareJob(JobState* js);
  void PrepareInstructions(JobState* js);
  void Emit(std::unique_ptr<WorkItem> item);
  void EmitFileReject(JobState* js, uint64_t* seq, std::string reason);
  void Reject(const std::string& path, const FileJob& job, uint64_t line, const std::string& reason,
              IngestReport* report);

  storage::Store* store_;
  const IngestOptions& options_;
  int workers_;
  // Pools committed by earlier runs, (task, lang) -> instructions.
  const std::map<std::pair<std::string, std::string>, std::vector<std::string>> stored_pools_;

  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_, space_cv_;
  std::deque<std::unique_ptr<WorkItem>> work_;
  std::map<uint64_t, std::unique_ptr<WorkItem>> done_;
  uint64_t next_seq_ = 0;
  bool reader_done_ = false;
  bool abort_ = false;
  size_t inflight_bytes_ = 0, inflight_items_ = 0;
  std::vector<ChunkBuffer> spare_buffers_;  // emptied chunk buffers for the reader

  // Reader-thread state.
  std::map<std::string, absl::StatusOr<std::shared_ptr<const TaskAux>>> aux_cache_;
  std::map<std::string, absl::StatusOr<std::vector<std::string>>> pool_cache_;
  std::set<std::string> pool_rejected_;  // pool files with a reject record already
  std::shared_ptr<const EnglishRows> english_;
  std::string english_path_;
  // The English rows the next translated files need, loaded ahead of them
  // (LoadEnglishAhead); null when english_ahead_bytes is 0.
  std::unique_ptr<EnglishRowsAhead> english_ahead_;
  size_t english_scan_ = 0;  // the next job LoadEnglishAhead looks at
  std::vector<std::string> reader_warnings_;
  std::atomic<uint64_t> total_bytes_{0};

  // Writer-thread state.
  storage::StoreWriteBatch batch_;
  std::vector<std::string> pending_rejects_;
  std::unique_ptr<RejectsFile> rejects_;
  std::map<storage::GroupKey, uint64_t> counts_;
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> pools_;
  uint64_t unique_images_ = 0;
  uint64_t processed_bytes_ = 0;

  // Worker-side image storage: the first worker to claim a hash stores it.
  std::mutex claim_mu_;
  absl::flat_hash_set<Hash128> claimed_;
  absl::Status worker_status_;  // first failed image write (under mu_)
};

// Where the rows of a file without their own instruction get one, and whether
// that is usable: the file's pool files (each must load whole), else a pool an
// earlier run committed for the task.
void Pipeline::PrepareInstructions(JobState* js) {
  const FileJob& job = *js->job;
  InstructionSource& src = js->instructions;
  std::vector<std::string> all;
  for (const auto& pool : job.pools) {
    std::string key = pool.path + "|" + job.group.task;
    auto it = pool_cache_.find(key);
    if (it == pool_cache_.end()) {
      it = pool_cache_.emplace(key, LoadInstructionPool(pool.path, job.group.task)).first;
    }
    if (!it->second.ok()) {
      std::string msg(it->second.status().message());
      if (!absl::StartsWith(msg, pool.path)) msg = absl::StrCat(pool.path, ": ", msg);
      src.problem = absl::StrCat("the task's instruction pool is unusable (", msg, ")");
      if (pool_rejected_.insert(pool.path).second) {  // once per file, whatever the task
        js->side_rejects.push_back({pool.path, absl::StrCat("instruction pool unusable: ", msg)});
      }
      js->pools.clear();
      return;
    }
    js->pools.emplace_back(pool.lang, *it->second);
    all.insert(all.end(), it->second->begin(), it->second->end());
  }
  if (!js->pools.empty()) {
    src.pool_usable = true;
    src.placeholders = PlaceholdersIn(all);
    return;
  }
  for (const std::string& lang : {job.group.lang, job.task.default_lang}) {
    auto it = stored_pools_.find({job.group.task, lang});
    if (it != stored_pools_.end() && !it->second.empty()) {
      src.pool_usable = true;
      src.placeholders = PlaceholdersIn(it->second);
      return;
    }
  }
  src.problem = job.format == RowFormat::kM3it80Translated
                    ? absl::StrCat("there is no instruction pool for ", job.group.task, " in ",
                                   job.group.lang, " (data/instructions/", job.group.lang, ".jsonl)")
                : job.task_dir.empty()
                    ? absl::StrCat("the store holds no instruction pool for task ", job.group.task)
                    : absl::StrCat("the task folder ", job.task_dir,
                                   " has no instructions.json / instruction.json");
}

absl::Status Pipeline::PrepareJob(JobState* js) {
  const FileJob& job = *js->job;
  js->mapping = MappingOf(job);
  if (js->mapping == Mapping::kImagenet || js->mapping == Mapping::kSs) {
    // Every row of the task may need its class table: a defective one rejects
    // the file (with the side file named), never maps rows without it.
    auto it = aux_cache_.find(job.task_dir);
    if (it == aux_cache_.end()) {
      absl::StatusOr<TaskAux> aux = LoadTaskAux(job.task_dir);
      absl::StatusOr<std::shared_ptr<const TaskAux>> entry =
          aux.ok() ? absl::StatusOr<std::shared_ptr<const TaskAux>>(
                         std::make_shared<const TaskAux>(std::move(*aux)))
                   : absl::StatusOr<std::shared_ptr<const TaskAux>>(aux.status());
      it = aux_cache_.emplace(job.task_dir, std::move(entry)).first;
    }
    if (!it->second.ok()) return it->second.status();
    js->aux = *it->second;
  }
  if (js->mapping == Mapping::kTranslated) {
    if (english_path_ != job.raw_path) {
      std::shared_ptr<const EnglishRows> ahead = english_ahead_ ? english_ahead_->Take(job.raw_path) : nullptr;
      if (ahead != nullptr) {
        english_ = std::move(ahead);
      } else {
        english_ = LoadEnglishRows(job.raw_path, job.raw_rel_path, options_.images,
                                   options_.max_line_bytes);
      }
      english_path_ = job.raw_path;
      if (!english_->file_error.empty()) {
        reader_warnings_.push_back(absl::StrCat("cannot read English rows ", job.raw_rel_path, ": ",
                                                english_->file_error));
      }
    }
    js->english = english_;
  }
  PrepareInstructions(js);
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

void Pipeline::EmitFileReject(JobState* js, uint64_t* seq, std::string reason) {
  auto item = std::make_unique<WorkItem>();
  item->seq = (*seq)++;
  item->job = js;
  item->first_of_file = item->last_of_file = true;
  item->file_error = std::move(reason);
  Emit(std::move(item));
}

void Pipeline::ReadFile(JobState* js, uint64_t* seq) {
  const FileJob& job = *js->job;
  auto file_reject = [&](std::string reason) { EmitFileReject(js, seq, std::move(reason)); };
  if (!js->refuse.empty()) return file_reject(js->refuse);
  absl::Status prep = PrepareJob(js);
  if (!prep.ok()) return file_reject(std::string(prep.message()));
  const storage::FileProgress& from = js->decision.progress;
  const bool resume = js->decision.action == SourceDecision::kResume;
  LineReader::HashResume hash_resume{from.hash_chain, from.hash_offset};
  auto reader = LineReader::Open(job.path, resume ? from.offset : 0, resume ? from.line : 0,
                                 options_.max_line_bytes, resume ? &hash_resume : nullptr);
  if (!reader.ok()) return file_reject(std::string(reader.status().message()));
  js->stat = (*reader)->stat_at_open();
  js->opened_ns = WallClockNs();
  if (js->stat.size == 0) {
    return file_reject("file is empty (0 bytes); a Git LFS object that was not fetched?");
  }
  const uint64_t start = resume ? from.offset : 0;
  total_bytes_ += js->stat.size > start ? js->stat.size - start : 0;
  bool first = true;
  do {
    auto item = std::make_unique<WorkItem>();
    item->seq = (*seq)++;
    item->job = js;
    item->first_of_file = first;
    item->chunk.buf = SpareBuffer();
    absl::Status s = (*reader)->Next(options_.chunk_bytes, options_.chunk_lines, &item->chunk);
    if (!s.ok()) {
      item->file_error = std::string(s.message());
      item->last_of_file = true;
      Emit(std::move(item));
      return;
    }
    if (first && start == 0 && !item->chunk.lines.empty() &&
        absl::StartsWith(item->chunk.text(item->chunk.lines[0]), kLfsPointerPrefix)) {
      item->chunk.lines.clear();
      item->file_error = "file is a Git LFS pointer, not the data: run `git lfs pull` in the repository";
      item->last_of_file = true;
      Emit(std::move(item));
      return;
    }
    if (options_.after_chunk_for_testing) {
      options_.after_chunk_for_testing(job.path, item->chunk.end_offset);
    }
    item->last_of_file = item->chunk.eof;
    if (item->last_of_file) {
      absl::StatusOr<std::string> fp = (*reader)->FinishUnchanged();
      if (fp.ok()) {
        item->fingerprint = *fp;
      } else {
        item->changed = std::string(fp.status().message());
      }
    }
    first = false;
    Emit(std::move(item));
  } while (!(*reader)->eof());
}

// Offer the English rows files that the translated files at or after job
// `from` need to the loader (EnglishRowsAhead), in the order they are needed,
// so that the reader does not stop to load them while the workers wait:
// their images are parsed, decoded and hashed on threads of their own (as
// many as workers) while the files before are read. A file that does not fit
// the budget yet is offered again before the next file is read; one that
// never does is loaded when its first translated file is read.
void Pipeline::LoadEnglishAhead(const std::vector<JobState>& jobs, size_t from) {
  if (!english_ahead_) return;
  for (english_scan_ = std::max(english_scan_, from); english_scan_ < jobs.size(); ++english_scan_) {
    const JobState& js = jobs[english_scan_];
    if (js.decision.action == SourceDecision::kSkip || !js.refuse.empty()) continue;
    const FileJob& job = *js.job;
    if (MappingOf(job) != Mapping::kTranslated || job.raw_path == english_path_ ||
        english_ahead_->Offered(job.raw_path)) {
      continue;
    }
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(job.raw_path, ec);
    if (ec) continue;  // loaded (and its error reported) when it is needed
    if (size > options_.english_ahead_bytes) continue;  // never fits: loaded when needed
    if (!english_ahead_->Offer(job.raw_path, job.raw_rel_path, size)) return;
  }
}

void Pipeline::ReaderLoop(std::vector<JobState>* jobs) {
  uint64_t seq = 0;
  if (options_.english_ahead_bytes > 0) {
    english_ahead_ = std::make_unique<EnglishRowsAhead>(workers_, options_.english_ahead_bytes, options_.images,
                                                        options_.max_line_bytes);
  }
  for (size_t i = 0; i < jobs->size(); ++i) {
    JobState& js = (*jobs)[i];
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (abort_) break;
    }
    if (js.decision.action == SourceDecision::kSkip && js.refuse.empty()) continue;
    LoadEnglishAhead(*jobs, i);
    ReadFile(&js, &seq);
  }
  english_ahead_.reset();  // waits for loads under way that are not needed after all (the run stopped)
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
    absl::Status s;
    if (auto err = parser->parse(text.data(), text.size(), false).get(row)) {
      s = absl::InvalidArgumentError(JsonErrorReason(err));
    } else {
      ctx.line = l.number;
      s = MapRow(row, ctx, &r.instances);
      for (size_t k = 0; s.ok() && k < r.instances.size(); ++k) {
        s = CheckInstruction(r.instances[k], js.instructions);
      }
    }
    if (!s.ok()) {
      r.kind = LineResult::kRejected;
      r.reason = std::string(s.message());
      r.instances.clear();
    }
    if (text.size() > (64u << 20)) *parser = dom::parser();  // give back a huge buffer
  }
  RecycleBuffer(&item->chunk.buf);  // the line bytes are no longer needed
}

// Chunk buffers go back to the reader instead of to the allocator: a fresh
// multi-megabyte buffer per chunk costs a page fault per 4 KiB touched. A few
// are kept (the read-ahead limit bounds how many are in use); a buffer grown
// for one huge line (above 8 MiB more than a chunk) is freed.
void Pipeline::RecycleBuffer(ChunkBuffer* buf) {
  ChunkBuffer b = std::move(*buf);
  if (b.capacity() > 2 * options_.chunk_bytes + (8u << 20)) return;
  b.clear();
  std::lock_guard<std::mutex> lock(mu_);
  if (spare_buffers_.size() < static_cast<size_t>(2 * workers_ + 2)) spare_buffers_.push_back(std::move(b));
}

ChunkBuffer Pipeline::SpareBuffer() {
  std::lock_guard<std::mutex> lock(mu_);
  if (spare_buffers_.empty()) return ChunkBuffer();
  ChunkBuffer b = std::move(spare_buffers_.back());
  spare_buffers_.pop_back();
  return b;
}

// Store the images of the item's accepted rows that no earlier row (of this
// run or of the store) has: their bytes go to the worker's own image pack
// file at once, their metadata records in one write of the worker's own
// (RocksDB takes concurrent writes), so the committing thread carries rows
// only and no image byte passes through a write batch. An image stored for a
// row a kill keeps from its commit is left unreferenced: the sweep mark set
// when the run started makes the next run delete it.
absl::Status Pipeline::StoreImages(WorkItem* item, storage::ImageWriter* images) {
  storage::StoreWriteBatch batch;
  for (LineResult& r : item->results) {
    if (r.kind != LineResult::kOk) continue;
    r.images.resize(r.instances.size());
    for (size_t k = 0; k < r.instances.size(); ++k) {
      DraftInstance& d = r.instances[k];
      r.images[k].reserve(d.images.size());
      for (const ImagePtr& img : d.images) {
        r.images[k].push_back(img->hash);
        bool first;
        {
          std::lock_guard<std::mutex> lock(claim_mu_);
          first = claimed_.insert(img->hash).second;
        }
        if (!first) continue;
        M3SERVE_ASSIGN_OR_RETURN(bool exists, store_->HasImage(img->hash));
        if (exists) continue;
        M3SERVE_RETURN_IF_ERROR(images->Add(img->hash, img->meta, img->bytes, &batch));
        ++item->new_images;
      }
      d.images.clear();  // the bytes are in the pack file; the writer needs the hashes only
    }
  }
  if (batch.Count() == 0) return absl::OkStatus();
  return store_->Write(&batch);
}

void Pipeline::WorkerLoop() {
  dom::parser parser;
  absl::StatusOr<std::unique_ptr<storage::ImageWriter>> images = store_->NewImageWriter();
  while (true) {
    std::unique_ptr<WorkItem> item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return abort_ || !work_.empty() || reader_done_; });
      if (abort_ || (work_.empty() && reader_done_)) return;
      item = std::move(work_.front());
      work_.pop_front();
    }
    absl::Status stored;
    if (item->file_error.empty() || !item->chunk.lines.empty()) {
      ProcessLines(item.get(), &parser);
      stored = images.ok() ? StoreImages(item.get(), images->get()) : images.status();
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!stored.ok() && worker_status_.ok()) worker_status_ = stored;
    uint64_t seq = item->seq;
    done_.emplace(seq, std::move(item));
    done_cv_.notify_all();
  }
}

// Rejects reach the file before the batch that covers their lines commits,
// and the batch records the file's new length: a failed write fails the
// commit (a re-run writes them again), and records of a commit that never
// happened are cut off by the next run.
absl::Status Pipeline::Commit(bool force) {
  constexpr size_t kMaxPendingRejects = 4096;  // bounds the memory they hold
  if (batch_.Count() == 0 && pending_rejects_.empty()) return absl::OkStatus();
  if (!force && batch_.ApproximateBytes() < options_.commit_bytes &&
      pending_rejects_.size() < kMaxPendingRejects) {
    return absl::OkStatus();
  }
  if (!pending_rejects_.empty()) {
    if (!rejects_) M3SERVE_RETURN_IF_ERROR(OpenRejects(/*only_to_cut=*/false));
    M3SERVE_RETURN_IF_ERROR(rejects_->Append(pending_rejects_));
    pending_rejects_.clear();
    batch_.PutIngestState(RejectsFile::StateKey(options_.rejects_path), absl::StrCat(rejects_->length()));
  }
  return store_->Write(&batch_);
}

// Open the rejects file, cutting off records past its committed length (those
// of a run killed before the commit that covered them). With `only_to_cut`
// (at the start of a run) the file is opened only when it must be cut; a store
// that never committed to this file records its length now, durably, so every
// later record is covered by a commit.
absl::Status Pipeline::OpenRejects(bool only_to_cut) {
  const std::string key = RejectsFile::StateKey(options_.rejects_path);
  M3SERVE_ASSIGN_OR_RETURN(auto committed, store_->GetIngestState(key));
  uint64_t length = 0;
  if (!committed || !absl::SimpleAtoi(*committed, &length)) {
    std::error_code ec;
    length = std::filesystem::is_regular_file(options_.rejects_path, ec)
                 ? std::filesystem::file_size(options_.rejects_path, ec)
                 : 0;
    if (ec) length = 0;
    storage::StoreWriteBatch b;
    b.PutIngestState(key, absl::StrCat(length));
    M3SERVE_RETURN_IF_ERROR(store_->Write(&b));
    M3SERVE_RETURN_IF_ERROR(store_->Flush());
    if (only_to_cut) return absl::OkStatus();
  } else if (only_to_cut) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(options_.rejects_path, ec) ||
        std::filesystem::file_size(options_.rejects_path, ec) <= length) {
      return absl::OkStatus();
    }
  }
  M3SERVE_ASSIGN_OR_RETURN(rejects_, RejectsFile::Open(options_.rejects_path, length));
  return absl::OkStatus();
}

void Pipeline::Reject(const std::string& path, const FileJob& job, uint64_t line,
                      const std::string& reason, IngestReport* report) {
  JsonWriter w;
  w.BeginObject()
      .Key("file").String(path)
      .Key("line").Uint(line)
      .Key("task").String(job.group.task)
      .Key("split").String(job.group.split)
      .Key("lang").String(job.group.lang)
      .Key("reason").String(reason)
      .EndObject();
  pending_rejects_.push_back(w.Release());
  ++report->rejected;
}

absl::Status Pipeline::WriteItem(WorkItem* item, IngestReport* report) {
  JobState& js = *item->job;
  FileReport& rep = *js.report;
  const FileJob& job = *js.job;
  auto reject = [&](uint64_t line, const std::string& reason) {
    Reject(job.path, job, line, reason, report);
    ++rep.rejected;
  };
  if (item->first_of_file) {
    for (const SideReject& r : js.side_rejects) {
      Reject(r.path, job, 0, r.reason, report);
      report->warnings.push_back(r.reason);
    }
    if (js.decision.action == SourceDecision::kResume) {
      js.progress = js.decision.progress;
    } else {
      js.progress = storage::FileProgress{};
    }
  }
  if (!item->file_error.empty() && item->chunk.lines.empty()) {
    reject(0, item->file_error);
    rep.status = FileStatus::kFailed;
    return Commit(false);
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
  unique_images_ += item->new_images;
  report->new_images += item->new_images;
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
    for (size_t k = 0; k < r.instances.size(); ++k) {
      DraftInstance& d = r.instances[k];
      storage::Instance x;
      x.group = job.group;
      x.ordinal = count++;
      x.instruction = std::move(d.instruction);
      x.inputs = std::move(d.inputs);
      x.outputs = std::move(d.outputs);
      x.meta_json = std::move(d.meta_json);
      x.template_vars = std::move(d.template_vars);
      x.source = {job.rel_path, r.line, target++};
      x.images = std::move(r.images[k]);
      batch_.PutInstance(x);
      ++rep.instances;
      ++report->instances;
      ++js.progress.instances;
    }
    r.instances.clear();
  }
  storage::FileProgress& p = js.progress;
  if (!item->chunk.lines.empty()) {
    p.offset = item->chunk.end_offset;
    p.line = item->chunk.lines.back().number;
    p.hash_chain = item->chunk.hash_chain;
    p.hash_offset = item->chunk.hash_offset;
    p.prefix_hash = item->chunk.prefix_hash;
  }
  RecordStat(js.stat, js.opened_ns, &p);
  p.side_known = true;
  p.side_files = js.side_files;
  if (!item->file_error.empty()) {
    // A read error part-way: keep what was read, leave the file resumable.
    reject(p.line + 1, item->file_error);
    rep.status = FileStatus::kFailed;
  } else if (!item->changed.empty()) {
    reject(0, item->changed);
    rep.status = FileStatus::kChanged;
    rep.note = item->changed;
    p.changed = true;
  } else if (item->last_of_file) {
    p.complete = true;
    p.fingerprint = item->fingerprint;
  }
  batch_.PutProgress(job.ProgressKey(), p);
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
  M3SERVE_RETURN_IF_ERROR(OpenRejects(/*only_to_cut=*/true));

  std::thread reader([&] { ReaderLoop(jobs); });
  std::vector<std::thread> workers;
  for (int i = 0; i < workers_; ++i) workers.emplace_back([&] { WorkerLoop(); });

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
    {
      std::lock_guard<std::mutex> lock(mu_);
      status = worker_status_;
    }
    if (status.ok()) status = WriteItem(item.get(), report);
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
    if (options_.on_progress) {
      options_.on_progress({processed_bytes_, total_bytes_.load(), report->rejected, false});
    }
  }
  reader.join();
  for (auto& w : workers) w.join();
  if (status.ok()) status = Commit(true);
  if (options_.on_progress) {
    options_.on_progress({processed_bytes_, total_bytes_.load(), report->rejected, true});
  }
  for (auto& w : reader_warnings_) report->warnings.push_back(w);
  return status;
}

// ---------------------------------------------------------------------------
// Before the pipeline: decide per file whether to start, resume, skip or
// re-ingest, and clear the groups of changed files in one atomic write.

absl::Status PlanSources(storage::Store* store, const IngestOptions& options,
                         std::vector<JobState>* jobs, IngestReport* report) {
  const int64_t now = WallClockNs();
  storage::StoreWriteBatch batch;
  std::map<storage::GroupKey, std::vector<JobState*>> restart;  // group -> its changed files
  SideFileIdentities sides(options.verify_sources, now);
  for (JobState& js : *jobs) {
    const FileJob& job = *js.job;
    M3SERVE_ASSIGN_OR_RETURN(std::optional<storage::FileProgress> stored,
                             store->GetProgress(job.ProgressKey()));
    absl::StatusOr<SourceDecision> d = DecideSource(job.path, stored, options.verify_sources, now);
    if (!d.ok()) {
      // Not read at all (a file that cannot be checked must not be started
      // over on top of rows it already has): rejected with the reason.
      js.refuse = std::string(d.status().message());
      continue;
    }
    js.decision = std::move(*d);
    // A side file that changed since the file's rows were made changes them
    // as the file itself would. Records from before side files were recorded
    // have nothing to compare with: they take the side files as they are.
    const bool side_known = stored.has_value() && stored->side_known;
    js.side_files = sides.Current(job, side_known ? stored->side_files : std::vector<storage::SideFileState>{});
    if (side_known && (js.decision.action == SourceDecision::kSkip ||
                       js.decision.action == SourceDecision::kResume)) {
      std::string change = SideFilesChange(job, stored->side_files, js.side_files);
      if (!change.empty()) {
        js.decision.action = SourceDecision::kRestartGroup;
        js.decision.why = std::move(change);
      }
    }
    switch (js.decision.action) {
      case SourceDecision::kStart: js.report->status = FileStatus::kIngested; break;
      case SourceDecision::kResume: js.report->status = FileStatus::kResumed; break;
      case SourceDecision::kSkip: {
        js.report->status = FileStatus::kAlreadyIngested;
        storage::FileProgress record = js.decision.refresh ? js.decision.progress : *stored;
        if (js.decision.refresh || !side_known || record.side_files != js.side_files) {
          record.side_known = true;
          record.side_files = js.side_files;
          batch.PutProgress(job.ProgressKey(), record);
        }
        break;
      }
      case SourceDecision::kRestartGroup:
        restart[job.group].push_back(&js);
        break;
    }
  }
  for (auto& [group, changed] : restart) {
    // Every file with rows in the group must be in this run and readable, so
    // the group comes out as a clean ingest of those files would make it.
    const std::string prefix = group.ToString() + "|";
    std::vector<std::string> keys;
    M3SERVE_RETURN_IF_ERROR(store->ForEachProgress([&](absl::string_view key, const storage::FileProgress&) {
      if (absl::StartsWith(key, prefix)) keys.emplace_back(key);
      return true;
    }));
    std::vector<JobState*> members;
    for (JobState& js : *jobs) {
      if (js.job->group == group) members.push_back(&js);
    }
    std::vector<std::string> missing;
    for (const std::string& key : keys) {
      bool found = false;
      for (JobState* m : members) found = found || (m->job->ProgressKey() == key && m->refuse.empty());
      if (!found) missing.push_back(key.substr(prefix.size()));
    }
    if (!missing.empty()) {
      for (JobState* js : changed) {
        js->refuse = absl::StrCat(
            "file changed (", js->decision.why, "), but group ", group.ToString(),
            " also holds rows of ", absl::StrJoin(missing, ", "),
            ", which this run does not ingest: run ingest with every source of the group, each "
            "readable");
      }
      continue;
    }
    batch.DeleteGroup(group);
    for (const std::string& key : keys) batch.DeleteProgress(key);
    batch.MarkImageSweepPending(true);
    for (JobState* m : members) {
      // The task's pool becomes what its file holds now (instructions are
      // drawn from it when served); otherwise the rows' pools merge in.
      for (const PoolFile& pool : m->job->pools) {
        if (const auto* list = sides.LoadedPool(pool.path, group.task)) batch.PutPool(group.task, pool.lang, *list);
      }
    }
    for (JobState* m : members) {
      const std::string why = m->decision.why;
      m->decision = SourceDecision{};
      m->report->status = FileStatus::kReingested;
      m->report->note = why.empty() ? absl::StrCat("another file of group ", group.ToString(), " changed")
                                    : why;
    }
    for (JobState* js : changed) {
      report->warnings.push_back(absl::StrCat(js->job->rel_path, " changed (", js->report->note,
                                              "): group ", group.ToString(),
                                              " is ingested again"));
    }
  }
  if (batch.Count() > 0) M3SERVE_RETURN_IF_ERROR(store->Write(&batch));
  return absl::OkStatus();
}

// Build the image index unless the store has one of its current catalog.
absl::Status EnsureImageIndex(storage::Store* store, IngestReport* report) {
  M3SERVE_ASSIGN_OR_RETURN(storage::Catalog catalog, store->ReadCatalog());
  M3SERVE_ASSIGN_OR_RETURN(std::optional<Hash128> basis, store->ImageIndexBasis());
  if (basis && *basis == catalog.fingerprint) return absl::OkStatus();
  const auto start = Clock::now();
  M3SERVE_ASSIGN_OR_RETURN(
      storage::ImageIndex index,
      storage::BuildImageIndex([store](const auto& fn) { return store->ForEachInstance(fn); },
                               catalog.fingerprint));
  M3SERVE_RETURN_IF_ERROR(store->WriteImageIndex(index));
  report->image_index_built = true;
  report->image_index_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return absl::OkStatus();
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
  M3SERVE_RETURN_IF_ERROR(PlanSources(store, options, &jobs, &report));
  // The sweep mark is set when a run was killed or failed after its workers
  // stored images (some may have no row), or when PlanSources cleared a group
  // (its old images may have none any more): then this run ends with a sweep.
  M3SERVE_ASSIGN_OR_RETURN(const bool sweep, store->ImageSweepPending());
  {
    storage::StoreWriteBatch first;
    // Workers store images ahead of the rows that refer to them; the mark is
    // written first, so any flushed image is covered by it.
    if (!sweep) first.MarkImageSweepPending(true);
    // A run that reads rows may change instances: the image index goes until
    // the run ends and builds it again, so no stop half-way leaves an index of
    // other data (a group read again can keep its count, and so the catalog).
    const bool reads = std::any_of(jobs.begin(), jobs.end(), [](const JobState& js) {
      return js.refuse.empty() && js.decision.action != SourceDecision::kSkip;
    });
    if (reads) first.DeleteImageIndex();
    if (first.Count() > 0) M3SERVE_RETURN_IF_ERROR(store->Write(&first));
  }
  M3SERVE_ASSIGN_OR_RETURN(storage::Catalog catalog, store->ReadCatalog());
  int workers = options.threads > 0 ? options.threads
                                    : std::max(1u, std::thread::hardware_concurrency());
  Pipeline pipeline(store, options, workers, catalog.pools);
  absl::Status s = pipeline.Run(&jobs, &report);
  if (s.ok() && sweep) {
    absl::StatusOr<uint64_t> swept = store->SweepUnreferencedImages();  // clears the mark
    s = swept.status();
    if (s.ok()) report.swept_images = *swept;
  } else if (s.ok()) {
    // Every stored image now has its committed row.
    storage::StoreWriteBatch clear;
    clear.MarkImageSweepPending(false);
    s = store->Write(&clear);
  }
  if (s.ok()) s = EnsureImageIndex(store, &report);
  if (s.ok()) s = store->Flush();
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (!s.ok()) return s;
  return report;
}

}  // namespace m3serve::ingest
