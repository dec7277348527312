#include "common/logging.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace m3serve {
namespace {
std::atomic<int> g_min_level{0};
}  // namespace

void SetMinLogLevel(LogSeverity level) { g_min_level.store(static_cast<int>(level)); }

namespace internal {

LogMessage::LogMessage(const char* file, int line, LogSeverity severity)
    : severity_(severity) {
  static const char kLetters[] = {'I', 'W', 'E', 'F'};
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  localtime_r(&tv.tv_sec, &t);
  char prefix[64];
  std::snprintf(prefix, sizeof(prefix), "%c%02d%02d %02d:%02d:%02d.%03d ",
                kLetters[static_cast<int>(severity)], t.tm_mon + 1, t.tm_mday, t.tm_hour,
                t.tm_min, t.tm_sec, static_cast<int>(tv.tv_usec / 1000));
  const char* base = std::strrchr(file, '/');
  stream_ << prefix << (base ? base + 1 : file) << ':' << line << "] ";
}

LogMessage::~LogMessage() {
  if (static_cast<int>(severity_) >= g_min_level.load() || severity_ == LogSeverity::kFatal) {
    std::string s = stream_.str();
    s.push_back('\n');
    // One write per line so concurrent lines do not interleave.
    ssize_t ignored = ::write(STDERR_FILENO, s.data(), s.size());
    (void)ignored;
  }
  if (severity_ == LogSeverity::kFatal) std::abort();
}

}  // namespace internal
}  // namespace m3serve
