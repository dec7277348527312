// File: tests/server_process.h
//
// A real m3serve-server process for integration tests, on 127.0.0.1 with a
// port chosen by the server (or a fixed one, to restart on the same port).
#ifndef M3SERVE_TESTS_SERVER_PROCESS_H_
#define M3SERVE_TESTS_SERVER_PROCESS_H_

#include <memory>
#include <string>
#include <vector>

#include "tests/process.h"

namespace m3serve::tests {

class ServerProcess {
 public:
  // `work_dir` receives the ready file and the log. `wrapper`, when given, is
  // a command prefix the server runs under (e.g. a shell that mounts first).
  ServerProcess(std::string db, std::string work_dir, std::vector<std::string> extra_args = {},
                std::vector<std::string> wrapper = {});
  ~ServerProcess();

  // Start (port 0 the first time, the same port on restarts) and wait until
  // it serves. False with the log in *error when it does not come up.
  bool Start(std::string* error = nullptr);
  // Send `sig` and reap. Returns the exit result.
  CommandResult Stop(int sig);
  bool running() const { return child_ != nullptr; }

  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const;

 private:
  std::string db_, dir_;
  std::vector<std::string> extra_;
  std::vector<std::string> wrapper_;
  std::unique_ptr<Child> child_;
  int port_ = 0;
  int metrics_port_ = 0;
  int starts_ = 0;
};

}  // namespace m3serve::tests

#endif  // M3SERVE_TESTS_SERVER_PROCESS_H_
