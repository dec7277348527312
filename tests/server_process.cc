#include "tests/server_process.h"

#include <chrono>
#include <filesystem>
#include <thread>

#include <simdjson.h>

namespace m3serve::tests {

ServerProcess::ServerProcess(std::string db, std::string work_dir, std::vector<std::string> extra_args,
                             std::vector<std::string> wrapper)
    : db_(std::move(db)), dir_(std::move(work_dir)), extra_(std::move(extra_args)),
      wrapper_(std::move(wrapper)) {
  std::filesystem::create_directories(dir_);
}

ServerProcess::~ServerProcess() {
  if (child_) Stop(9);
}

std::string ServerProcess::log() const { return ReadFile(dir_ + "/server.log"); }

bool ServerProcess::Start(std::string* error) {
  const std::string ready = dir_ + "/ready.json";
  std::filesystem::remove(ready);
  std::vector<std::string> args = {Bin("m3serve-server"), "--db", db_, "--listen",
                                   "127.0.0.1:" + std::to_string(port_), "--metrics-listen",
                                   "127.0.0.1:0", "--ready-file", ready};
  args.insert(args.end(), extra_.begin(), extra_.end());
  if (!wrapper_.empty()) {
    // The wrapper receives the server command line as its trailing arguments.
    std::vector<std::string> full = wrapper_;
    full.insert(full.end(), args.begin(), args.end());
    args = std::move(full);
  }
  // Append to the log across restarts.
  const std::string log_path = dir_ + "/server" + (starts_++ ? std::to_string(starts_) : "") + ".log";
  child_ = std::make_unique<Child>(args, log_path);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::filesystem::exists(ready)) {
      simdjson::dom::parser p;
      simdjson::dom::element e;
      if (!p.load(ready).get(e)) {
        int64_t port = 0, mport = 0;
        if (!e["port"].get_int64().get(port) && !e["metrics_port"].get_int64().get(mport)) {
          port_ = static_cast<int>(port);
          metrics_port_ = static_cast<int>(mport);
          return true;
        }
      }
    }
    if (child_->Exited()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (error) *error = ReadFile(log_path);
  Stop(9);
  return false;
}

CommandResult ServerProcess::Stop(int sig) {
  if (!child_) return {};
  child_->Kill(sig);
  CommandResult r = child_->Wait();
  child_.reset();
  return r;
}

}  // namespace m3serve::tests
