#include "admin/progress_printer.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_format.h"
#include "common/logging.h"

namespace m3serve::admin {

ProgressPrinter::ProgressPrinter(ProgressMode mode) : start_(Clock::now()), last_(start_) {
  if (mode == ProgressMode::kAuto) {
    mode = ::isatty(STDERR_FILENO) ? ProgressMode::kBar : ProgressMode::kLog;
  }
  mode_ = mode;
}

ProgressPrinter::~ProgressPrinter() {
  if (bar_drawn_) std::fprintf(stderr, "\n");
}

void ProgressPrinter::Update(uint64_t done, uint64_t total, uint64_t rejects, bool force) {
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

std::string ProgressPrinter::Bytes(uint64_t b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = double(b);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  return u == 0 ? absl::StrFormat("%.0f %s", v, units[u]) : absl::StrFormat("%.1f %s", v, units[u]);
}

std::string ProgressPrinter::Duration(double s) {
  int t = static_cast<int>(s);
  return absl::StrFormat("%d:%02d:%02d", t / 3600, (t / 60) % 60, t % 60);
}

}  // namespace m3serve::admin
