// The raw TCP baseline of the collective benchmark: a textbook ring allreduce (Patarasuk
// & Yuan 2009: R-1 reduce-scatter steps, then R-1 allgather steps, each rank sending one
// chunk of S/R to its successor while receiving one from its predecessor) over plain
// loopback sockets, reducing received floats as they arrive. 2(R-1)/R * S bytes sent per
// rank. Benchmark code only: no timeouts, errors abort the benchmark.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace gradzip::bench {

class RawRing {
 public:
  /// Listens, publishes its port as <store>/ring-<rank>.port, connects to rank+1 and
  /// accepts rank-1.
  RawRing(std::uint32_t rank, std::uint32_t size, const std::string& store) : rank_(rank), size_(size) {
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listener, 1) != 0) {
      throw std::runtime_error("raw ring: bind/listen failed");
    }
    socklen_t len = sizeof a;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
    const std::string file = store + "/ring-" + std::to_string(rank) + ".port";
    { std::ofstream(file + ".tmp") << ntohs(a.sin_port) << "\n"; }
    std::filesystem::rename(file + ".tmp", file);
    const std::string next = store + "/ring-" + std::to_string((rank + 1) % size) + ".port";
    int port = 0;
    for (int i = 0; i < 6000 && port == 0; ++i) {
      std::ifstream in(next);
      if (!(in >> port)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (port == 0) throw std::runtime_error("raw ring: no port from rank " + std::to_string((rank + 1) % size));
    send_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in b{};
    b.sin_family = AF_INET;
    b.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    b.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::connect(send_fd_, reinterpret_cast<sockaddr*>(&b), sizeof b) != 0) throw std::runtime_error("raw ring: connect");
    recv_fd_ = ::accept(listener, nullptr, nullptr);
    ::close(listener);
    const int one = 1;
    ::setsockopt(send_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawRing() {
    ::close(send_fd_);
    ::close(recv_fd_);
  }
  RawRing(const RawRing&) = delete;
  RawRing& operator=(const RawRing&) = delete;

  /// In-place sum of x[0, n) over the ranks.
  void allreduce(float* x, std::size_t n) {
    const std::size_t R = size_;
    auto chunk_begin = [&](std::size_t c) { return n * c / R; };
    tmp_.resize(n / R + 1);
    for (std::size_t s = 0; s + 1 < R; ++s) {  // reduce-scatter: chunk rank-s out, rank-s-1 in (+=)
      const std::size_t out = (rank_ + R - s) % R, in = (rank_ + 2 * R - s - 1) % R;
      exchange(x + chunk_begin(out), chunk_begin(out + 1) - chunk_begin(out), x + chunk_begin(in),
               chunk_begin(in + 1) - chunk_begin(in), /*add=*/true);
    }
    for (std::size_t s = 0; s + 1 < R; ++s) {  // allgather: the reduced chunk rank+1-s goes round
      const std::size_t out = (rank_ + 1 + R - s) % R, in = (rank_ + 2 * R - s) % R;
      exchange(x + chunk_begin(out), chunk_begin(out + 1) - chunk_begin(out), x + chunk_begin(in),
               chunk_begin(in + 1) - chunk_begin(in), /*add=*/false);
    }
  }

 private:
  /// Sends out[0, n_out) to the successor while receiving n_in floats from the
  /// predecessor into in (added when `add`, as whole floats arrive).
  void exchange(const float* out, std::size_t n_out, float* in, std::size_t n_in, bool add) {
    const auto* src = reinterpret_cast<const std::uint8_t*>(out);
    auto* dst = add ? reinterpret_cast<std::uint8_t*>(tmp_.data()) : reinterpret_cast<std::uint8_t*>(in);
    std::size_t sent = 0, got = 0, reduced = 0;
    const std::size_t send_bytes = 4 * n_out, recv_bytes = 4 * n_in;
    while (sent < send_bytes || got < recv_bytes) {
      pollfd p[2] = {{send_fd_, static_cast<short>(sent < send_bytes ? POLLOUT : 0), 0},
                     {recv_fd_, static_cast<short>(got < recv_bytes ? POLLIN : 0), 0}};
      ::poll(p, 2, -1);
      if (p[0].revents & POLLOUT) {
        const ssize_t k = ::send(send_fd_, src + sent, send_bytes - sent, MSG_DONTWAIT);
        if (k > 0) sent += static_cast<std::size_t>(k);
      }
      if (p[1].revents & POLLIN) {
        const ssize_t k = ::recv(recv_fd_, dst + got, recv_bytes - got, MSG_DONTWAIT);
        if (k == 0) throw std::runtime_error("raw ring: peer closed");
        if (k > 0) got += static_cast<std::size_t>(k);
        if (add) {
          for (const std::size_t whole = got / 4; reduced < whole; ++reduced) in[reduced] += tmp_[reduced];
        }
      }
    }
  }

  std::uint32_t rank_, size_;
  int send_fd_ = -1, recv_fd_ = -1;
  std::vector<float> tmp_;
};

}  // namespace gradzip::bench
