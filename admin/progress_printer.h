// File: admin/progress_printer.h
//
// The terminal display of an ingest's progress: a bar redrawn in place on a
// TTY, a log line every 10 s otherwise.
#ifndef M3SERVE_ADMIN_PROGRESS_PRINTER_H_
#define M3SERVE_ADMIN_PROGRESS_PRINTER_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace m3serve::admin {

enum class ProgressMode { kAuto, kBar, kLog, kNone };

class ProgressPrinter {
 public:
  // kAuto: a bar when stderr is a TTY, log lines otherwise.
  explicit ProgressPrinter(ProgressMode mode);
  ~ProgressPrinter();  // ends a drawn bar's line

  // `done` of `total` bytes, `rejects` so far. Throttled unless `force`.
  void Update(uint64_t done, uint64_t total, uint64_t rejects, bool force);

  static std::string Bytes(uint64_t b);
  static std::string Duration(double seconds);

 private:
  using Clock = std::chrono::steady_clock;
  ProgressMode mode_;
  uint64_t total_ = 0;
  Clock::time_point start_, last_;
  bool bar_drawn_ = false;
  bool logged_ = false;
};

}  // namespace m3serve::admin

#endif  // M3SERVE_ADMIN_PROGRESS_PRINTER_H_
