// File: common/logging.h
//
// Minimal leveled logging to stderr and CHECK for programmer errors. Abseil
// 20220623 has no absl/log, so m3serve keeps its own few lines here.
//   M3_LOG(INFO) << "opened store at " << path;
//   M3_CHECK(ptr != nullptr) << "why";
// Log lines are `I1127 12:00:00.123 file.cc:42] message`. Thread-safe: each
// line is formatted into a buffer and written with one call.
#ifndef M3SERVE_COMMON_LOGGING_H_
#define M3SERVE_COMMON_LOGGING_H_

#include <sstream>

namespace m3serve {

enum class LogSeverity { kInfo = 0, kWarning = 1, kError = 2, kFatal = 3 };

// Drop messages below `level` (default kInfo). Thread-safe.
void SetMinLogLevel(LogSeverity level);

namespace internal {

class LogMessage {
 public:
  LogMessage(const char* file, int line, LogSeverity severity);
  ~LogMessage();  // Writes the line; aborts for kFatal.
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogSeverity severity_;
  std::ostringstream stream_;
};

// Swallows a stream expression when a CHECK passes.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace internal
}  // namespace m3serve

#define M3_LOG_INFO ::m3serve::LogSeverity::kInfo
#define M3_LOG_WARNING ::m3serve::LogSeverity::kWarning
#define M3_LOG_ERROR ::m3serve::LogSeverity::kError
#define M3_LOG_FATAL ::m3serve::LogSeverity::kFatal

#define M3_LOG(severity) \
  ::m3serve::internal::LogMessage(__FILE__, __LINE__, M3_LOG_##severity).stream()

#define M3_CHECK(cond)                            \
  (cond) ? (void)0                                \
         : ::m3serve::internal::Voidify() &       \
               M3_LOG(FATAL) << "Check failed: " #cond " "

#endif  // M3SERVE_COMMON_LOGGING_H_
