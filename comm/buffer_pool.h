// Reusable message buffers. A multi-megabyte message in a freshly allocated buffer costs
// a page fault per 4 KiB on first touch (~350 ms per 100 MB on the development VMs, more
// than moving the bytes over loopback), so the transport builds messages on buffers that
// come back to a pool when the last reference (often libzmq's, through a zero-copy
// message's free function, on its I/O thread) goes away.
//
//   BufferPool pool;
//   std::shared_ptr<std::vector<std::uint8_t>> b = pool.acquire(bytes);  // size() == bytes
//   ... fill b ...; SharedBytes shared = b;   // hand out; back in the pool when all drop
//
// Thread-safe. Buffers may outlive the pool (they are then freed, not pooled).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace gradzip::comm {

class BufferPool {
 public:
  /// Keeps at most `max_buffers` idle buffers (larger ones first out when full).
  explicit BufferPool(std::size_t max_buffers = 64);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  /// A buffer of exactly `bytes` bytes (contents unspecified), reusing an idle one whose
  /// capacity fits when there is one.
  std::shared_ptr<std::vector<std::uint8_t>> acquire(std::size_t bytes);
  /// Idle buffers now held.
  std::size_t idle() const;

 private:
  struct State {
    std::mutex mu;
    std::vector<std::unique_ptr<std::vector<std::uint8_t>>> idle;
    std::size_t max_buffers = 0;
    bool closed = false;
  };
  std::shared_ptr<State> state_;
};

/// Tells glibc's allocator to keep freed large blocks in the heap instead of returning
/// them to the kernel (mmap threshold at its maximum, trimming off, 64 MiB of top pad
/// per arena), so the receive buffers libzmq allocates for every large message reuse
/// memory that is already mapped. Process-wide; called once by the ZeroMQ transports;
/// costs up to 64 MiB of retained memory per malloc arena. No-op off glibc.
void keep_freed_message_memory();

}  // namespace gradzip::comm
