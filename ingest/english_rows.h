// File: ingest/english_rows.h
//
// The M3IT-80 join: a translated row takes its images from the English row of
// the same task and split (data/<task>/{train,val,test}_500.jsonl), matched by
// "id" when both files carry ids, by line number otherwise. This loads the
// English side once per file: images per line, the line of each id, and why a
// line has no usable image.
#ifndef M3SERVE_INGEST_ENGLISH_ROWS_H_
#define M3SERVE_INGEST_ENGLISH_ROWS_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ingest/row_mapper.h"

namespace m3serve::ingest {

// Read `path` (shown as `rel_path`). A file that cannot be read gives rows
// with file_error set, so every translated row names the reason.
std::shared_ptr<const EnglishRows> LoadEnglishRows(const std::string& path,
                                                   const std::string& rel_path,
                                                   const ImageCheckOptions& images,
                                                   uint64_t max_line_bytes);

// English rows files loaded ahead of the translated files that need them, on
// up to `threads` threads of its own, in the order they were offered. The
// files offered and not yet taken (queued, being loaded or loaded) add up to
// at most `budget_bytes` of file: their decoded images are held in memory.
// Offer and Take are called from one thread (the ingest's reader).
class EnglishRowsAhead {
 public:
  EnglishRowsAhead(int threads, uint64_t budget_bytes, const ImageCheckOptions& images,
                   uint64_t max_line_bytes);
  // Stops: files not started yet are dropped, loads under way finish.
  ~EnglishRowsAhead();
  EnglishRowsAhead(const EnglishRowsAhead&) = delete;
  EnglishRowsAhead& operator=(const EnglishRowsAhead&) = delete;

  // Queue `path` (`bytes` long, shown as `rel_path`) to be loaded. False when
  // it does not fit the budget now (offer it again after a Take), or no
  // thread could be started (it is loaded when needed).
  bool Offer(const std::string& path, const std::string& rel_path, uint64_t bytes);
  bool Offered(const std::string& path) const;
  // The rows of an offered path, waiting for its load; nullptr when it was
  // not offered. Its bytes leave the budget.
  std::shared_ptr<const EnglishRows> Take(const std::string& path);
  // Bytes of files offered and not yet taken.
  uint64_t held_bytes() const { return held_; }

 private:
  struct Entry {
    std::string path, rel_path;
    uint64_t bytes = 0;
    std::promise<std::shared_ptr<const EnglishRows>> promise;
    std::future<std::shared_ptr<const EnglishRows>> rows;
  };
  void Loop();

  const int max_threads_;
  const uint64_t budget_;
  const ImageCheckOptions images_;
  const uint64_t max_line_bytes_;
  std::deque<std::shared_ptr<Entry>> offered_;  // not yet taken, in offer order (caller's thread)
  uint64_t held_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Entry>> todo_;  // not yet started (under mu_)
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_ENGLISH_ROWS_H_
