#include "server/worker_pool.h"

namespace m3serve::server {

WorkerPool::WorkerPool(int threads) {
  if (threads < 1) threads = 1;
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

FairKey WorkerPool::OneOffKey(const std::string& identity) {
  std::lock_guard<std::mutex> lock(mu_);
  return {identity, next_one_off_++};
}

void WorkerPool::Submit(const FairKey& key, std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, new_identity] = identities_.try_emplace(key.identity);
    Identity& id = it->second;
    if (new_identity || id.turns.empty()) turns_.push_back(key.identity);
    auto& queue = id.tasks[key.stream];
    if (queue.empty()) id.turns.push_back(key.stream);
    queue.push_back(std::move(task));
  }
  cv_.notify_one();
}

bool WorkerPool::PopLocked(std::function<void()>* task) {
  if (turns_.empty()) return false;
  // The identity whose turn it is, and its stream whose turn it is.
  const std::string who = std::move(turns_.front());
  turns_.pop_front();
  Identity& id = identities_[who];
  const uint64_t stream = id.turns.front();
  id.turns.pop_front();
  auto queue = id.tasks.find(stream);
  *task = std::move(queue->second.front());
  queue->second.pop_front();
  // Both go to the back of their rotation while they have work left.
  if (queue->second.empty()) {
    id.tasks.erase(queue);
  } else {
    id.turns.push_back(stream);
  }
  if (id.turns.empty()) {
    identities_.erase(who);
  } else {
    turns_.push_back(who);
  }
  return true;
}

void WorkerPool::Loop() {
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !turns_.empty(); });
      if (!PopLocked(&task)) return;  // stop_ and drained
    }
    task();
  }
}

}  // namespace m3serve::server
