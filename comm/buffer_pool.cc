#include "comm/buffer_pool.h"

#include <algorithm>
#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace gradzip::comm {

BufferPool::BufferPool(std::size_t max_buffers) : state_(std::make_shared<State>()) {
  state_->max_buffers = max_buffers;
}

BufferPool::~BufferPool() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->closed = true;  // buffers still out are freed when released
  state_->idle.clear();
}

std::shared_ptr<std::vector<std::uint8_t>> BufferPool::acquire(std::size_t bytes) {
  std::unique_ptr<std::vector<std::uint8_t>> buf;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    auto& idle = state_->idle;
    // The smallest idle buffer that fits: keeps big buffers for big messages.
    auto best = idle.end();
    for (auto it = idle.begin(); it != idle.end(); ++it) {
      if ((*it)->capacity() >= bytes && (best == idle.end() || (*it)->capacity() < (*best)->capacity())) best = it;
    }
    if (best != idle.end()) {
      buf = std::move(*best);
      idle.erase(best);
    }
  }
  if (!buf) buf = std::make_unique<std::vector<std::uint8_t>>();
  buf->resize(bytes);  // within capacity: no allocation, no page touched
  std::weak_ptr<State> home = state_;
  return std::shared_ptr<std::vector<std::uint8_t>>(buf.release(), [home](std::vector<std::uint8_t>* b) {
    std::unique_ptr<std::vector<std::uint8_t>> owned(b);
    const auto state = home.lock();
    if (!state) return;
    std::lock_guard<std::mutex> lock(state->mu);
    if (state->closed) return;
    state->idle.push_back(std::move(owned));
    if (state->idle.size() > state->max_buffers) {
      // Drop the smallest: the large ones are what page faults make expensive.
      auto smallest = std::min_element(state->idle.begin(), state->idle.end(),
                                        [](const auto& x, const auto& y) { return x->capacity() < y->capacity(); });
      state->idle.erase(smallest);
    }
  });
}

std::size_t BufferPool::idle() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->idle.size();
}

void keep_freed_message_memory() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum: blocks below it come from the heap
    mallopt(M_TRIM_THRESHOLD, 1 << 30);   // and stay there when freed
    // Per-thread arenas (libzmq's I/O threads allocate the receive buffers) shrink their
    // heaps down to this pad when blocks are freed; measured: 10k page faults per 100 MB
    // push+pull step without it, ~0 with it (bench/comm/comm_bench.cc page_faults_per_step).
    mallopt(M_TOP_PAD, 64 << 20);
  });
#endif
}

}  // namespace gradzip::comm
