// File: server/worker_pool.h
//
// A fixed-size thread pool for blocking and CPU-heavy work (RocksDB reads,
// image decoding), so gRPC reactions never block.
#ifndef M3SERVE_SERVER_WORKER_POOL_H_
#define M3SERVE_SERVER_WORKER_POOL_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace m3serve::server {

class WorkerPool {
 public:
  // Start `threads` workers (at least one).
  explicit WorkerPool(int threads);
  // Run every queued task, then join the workers.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queue `task` (FIFO). Thread-safe.
  void Submit(std::function<void()> task);
  int size() const { return static_cast<int>(threads_.size()); }

 private:
  void Loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_WORKER_POOL_H_
