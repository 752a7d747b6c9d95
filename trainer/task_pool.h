// A small fixed pool of threads running tasks in submission order (no torch): the
// workers of one process encode their gradient buckets on it while backward goes on,
// so both cores of a 2-core host work (trainer/pipeline.h).
//
// Thread-safety: submit() from any thread. Tasks must not throw (a task catches its own
// errors and reports them to its owner). The destructor runs the tasks already queued,
// then joins the threads.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gradzip::trainer {

class TaskPool {
 public:
  /// `threads` >= 1.
  explicit TaskPool(int threads);
  ~TaskPool();
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  void submit(std::function<void()> task);
  int threads() const { return static_cast<int>(threads_.size()); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace gradzip::trainer
