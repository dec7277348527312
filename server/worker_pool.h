// File: server/worker_pool.h
//
// A fixed-size thread pool for blocking and CPU-heavy work (RocksDB reads,
// image decoding), so gRPC reactions never block. Work is shared fairly:
// tasks are queued per (identity, stream), identities take turns, and within
// an identity its streams take turns, one task per turn. A stream that keeps
// many tasks queued gets no more of the workers than one with a single task,
// and an identity that opens many streams gets no more than one with a
// single stream, while the workers are busy.
#ifndef M3SERVE_SERVER_WORKER_POOL_H_
#define M3SERVE_SERVER_WORKER_POOL_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace m3serve::server {

// Who a task works for.
struct FairKey {
  std::string identity;  // "" for unauthenticated callers
  uint64_t stream = 0;   // a stream, or a unary call
};

class WorkerPool {
 public:
  // Start `threads` workers (at least one).
  explicit WorkerPool(int threads);
  // Run every queued task, then join the workers.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queue `task` for `key`: FIFO within the key, round-robin across keys as
  // described above. Thread-safe.
  void Submit(const FairKey& key, std::function<void()> task);
  // A key no other caller has (for one-off work such as a unary call).
  FairKey OneOffKey(const std::string& identity);
  int size() const { return static_cast<int>(threads_.size()); }

 private:
  struct Identity {
    std::deque<uint64_t> turns;                              // streams with queued tasks
    std::map<uint64_t, std::deque<std::function<void()>>> tasks;
  };
  void Loop();
  bool PopLocked(std::function<void()>* task);

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> turns_;  // identities with queued tasks
  std::map<std::string, Identity> identities_;
  uint64_t next_one_off_ = uint64_t{1} << 63;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_WORKER_POOL_H_
