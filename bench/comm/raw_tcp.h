// Baselines of the parameter-server benchmarks (bench/comm/comm_bench.cc): a raw POSIX
// TCP loopback socket moving the same bytes (100 MB there and back; a 64-byte ping-pong),
// and the process counters (CPU seconds, page faults) the benchmarks report.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace gradzip::comm::bench {

// Minor page faults of the process so far (first touches of fresh memory).
inline double process_page_faults() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_minflt);
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CPU seconds of the whole process (all threads: client, shard loops, libzmq I/O
// threads, the raw peer). Less sensitive than wall time to other jobs on a shared host.
inline double process_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// ---- raw TCP baseline --------------------------------------------------------
// A loopback connection; the peer thread reads `bytes` and writes them back.
struct RawPair {
  int client = -1, server = -1, listener = -1;
  RawPair() {
    listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    ::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(listener, 1);
    socklen_t len = sizeof(a);
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
    client = ::socket(AF_INET, SOCK_STREAM, 0);
    ::connect(client, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    server = ::accept(listener, nullptr, nullptr);
    const int one = 1;
    ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~RawPair() {
    for (int fd : {client, server, listener}) {
      if (fd >= 0) ::close(fd);
    }
  }
  static bool send_all(int fd, const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
      const ssize_t w = ::send(fd, p, n, 0);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    return true;
  }
  static bool recv_all(int fd, std::uint8_t* p, std::size_t n) {
    while (n > 0) {
      const ssize_t r = ::recv(fd, p, n, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      p += r;
      n -= static_cast<std::size_t>(r);
    }
    return true;
  }
};

// `bytes` there and back: the peer thread reads them all, then writes them back; the
// client sends and receives at once so the echo never blocks on a full buffer.
struct RawEcho {
  std::size_t n;
  std::vector<std::uint8_t> out, in, echo;
  RawPair pair;
  std::thread peer;
  explicit RawEcho(std::size_t bytes) : n(bytes), out(bytes, 1), in(bytes), echo(bytes) {
    peer = std::thread([this] {
      while (RawPair::recv_all(pair.server, echo.data(), n)) {
        if (!RawPair::send_all(pair.server, echo.data(), n)) break;
      }
    });
    round();  // warm: first touch of every buffer, TCP windows opened
  }
  ~RawEcho() {
    ::shutdown(pair.client, SHUT_RDWR);
    peer.join();
  }
  void round() {
    std::thread sender([this] { RawPair::send_all(pair.client, out.data(), n); });
    RawPair::recv_all(pair.client, in.data(), n);
    sender.join();
  }
};

// A 64-byte ping-pong over a raw loopback socket.
struct RawPing {
  RawPair pair;
  std::thread peer;
  std::uint8_t msg[64] = {};
  RawPing() {
    peer = std::thread([this] {
      std::uint8_t buf[64];
      while (RawPair::recv_all(pair.server, buf, 64) && RawPair::send_all(pair.server, buf, 64)) {
      }
    });
    for (int i = 0; i < 100; ++i) ping();  // warm
  }
  ~RawPing() {
    ::shutdown(pair.client, SHUT_RDWR);
    peer.join();
  }
  void ping() {
    RawPair::send_all(pair.client, msg, 64);
    RawPair::recv_all(pair.client, msg, 64);
  }
};

}  // namespace gradzip::comm::bench
