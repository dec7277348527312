#include "ingest/english_rows.h"

#include <algorithm>
#include <system_error>
#include <utility>

#include <simdjson.h>

#include "absl/strings/str_cat.h"
#include "ingest/line_reader.h"

namespace m3serve::ingest {

namespace dom = simdjson::dom;

std::shared_ptr<const EnglishRows> LoadEnglishRows(const std::string& path,
                                                   const std::string& rel_path,
                                                   const ImageCheckOptions& images,
                                                   uint64_t max_line_bytes) {
  auto rows = std::make_shared<EnglishRows>();
  rows->rel_path = rel_path;
  auto reader = LineReader::Open(path, 0, 0, max_line_bytes);
  if (!reader.ok()) {
    rows->file_error = std::string(reader.status().message());
    return rows;
  }
  dom::parser parser;
  LineChunk chunk;
  while (!(*reader)->eof()) {
    absl::Status s = (*reader)->Next(4u << 20, 256, &chunk);
    if (!s.ok()) {
      rows->file_error = std::string(s.message());
      break;
    }
    for (const auto& l : chunk.lines) {
      if (l.oversize) {
        rows->by_line[l.number].error = "line above --max-line-bytes";
        continue;
      }
      absl::string_view text = chunk.text(l);
      if (text.find_first_not_of(" \t") == absl::string_view::npos) continue;
      EnglishRows::Row& row = rows->by_line[l.number];
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
      absl::Status is = ExtractImages(obj, images, &row.images);
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

EnglishRowsAhead::EnglishRowsAhead(int threads, uint64_t budget_bytes, const ImageCheckOptions& images,
                                   uint64_t max_line_bytes)
    : max_threads_(std::max(threads, 1)), budget_(budget_bytes), images_(images), max_line_bytes_(max_line_bytes) {}

EnglishRowsAhead::~EnglishRowsAhead() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    todo_.clear();
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

bool EnglishRowsAhead::Offer(const std::string& path, const std::string& rel_path, uint64_t bytes) {
  if (held_ + bytes > budget_) return false;
  auto e = std::make_shared<Entry>();
  e->path = path;
  e->rel_path = rel_path;
  e->bytes = bytes;
  e->rows = e->promise.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (threads_.size() < static_cast<size_t>(max_threads_)) {
      try {
        threads_.emplace_back([this] { Loop(); });
      } catch (const std::system_error&) {
        if (threads_.empty()) return false;  // no thread at all: loaded when needed
      }
    }
    todo_.push_back(e);
  }
  cv_.notify_one();
  offered_.push_back(std::move(e));
  held_ += bytes;
  return true;
}

bool EnglishRowsAhead::Offered(const std::string& path) const {
  return std::any_of(offered_.begin(), offered_.end(), [&](const auto& e) { return e->path == path; });
}

std::shared_ptr<const EnglishRows> EnglishRowsAhead::Take(const std::string& path) {
  auto it = std::find_if(offered_.begin(), offered_.end(), [&](const auto& e) { return e->path == path; });
  if (it == offered_.end()) return nullptr;
  std::shared_ptr<Entry> e = *it;
  offered_.erase(it);
  held_ -= e->bytes;
  return e->rows.get();  // queued ahead of it: every earlier file is started first
}

void EnglishRowsAhead::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !todo_.empty(); });
    if (todo_.empty()) return;  // stopping
    std::shared_ptr<Entry> e = std::move(todo_.front());
    todo_.pop_front();
    lock.unlock();
    try {
      e->promise.set_value(LoadEnglishRows(e->path, e->rel_path, images_, max_line_bytes_));
    } catch (...) {
      e->promise.set_exception(std::current_exception());  // Take throws it, as a load on its thread would
    }
    lock.lock();
  }
}

}  // namespace m3serve::ingest
