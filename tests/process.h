// File: tests/process.h
//
// Run m3serve's binaries from integration tests: real processes, real exit
// codes and signals, output captured in files.
#ifndef M3SERVE_TESTS_PROCESS_H_
#define M3SERVE_TESTS_PROCESS_H_

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace m3serve::tests {

// Directory of the built binaries ($M3SERVE_BIN_DIR, set by ctest).
std::string BinDir();
std::string Bin(const std::string& name);
// The source tree ($M3SERVE_SOURCE_DIR, set by ctest; default ".").
std::string SourceDir();

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

// Run `args` to completion, capturing stdout and stderr.
CommandResult RunCommand(const std::vector<std::string>& args);

// A child process running in the background.
class Child {
 public:
  // Start `args`; stdout and stderr go to `log_path`.
  Child(const std::vector<std::string>& args, const std::string& log_path);
  ~Child();
  pid_t pid() const { return pid_; }
  // Send a signal.
  void Kill(int sig);
  // Wait for exit; returns the result (output read from the log file).
  CommandResult Wait();
  // True if the process has exited (reaps it).
  bool Exited();

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  bool reaped_ = false;
  int status_ = 0;
};

std::string ReadFile(const std::filesystem::path& p);

// A fresh temporary directory, removed at destruction.
class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& tag);
  ~ScopedTempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& sub) const { return (path_ / sub).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace m3serve::tests

#endif  // M3SERVE_TESTS_PROCESS_H_
