// The Gloo engine of comm/collective.h: ranks as threads of this process over loopback TCP
// (as gloo's own tests do), values unique per rank and element so misrouted bytes show,
// sizes that are not round numbers; the byte formulas; timeouts that must name the rank.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "comm/collective.h"
#include "comm/collective_health.h"
#include "quant/half.h"
#include "tests/comm/temp_dir.h"

namespace gradzip::comm {
namespace {

CollectiveOptions rank_options(const std::string& store, std::uint32_t rank, std::uint32_t size, double timeout_s = 20) {
  CollectiveOptions o;
  o.rank = rank;
  o.size = size;
  o.store_dir = store;
  o.timeout_s = timeout_s;
  o.heartbeat_s = 0.2;
  return o;
}

/// Runs body(collective) on `size` threads, one rank each; rethrows the first failure.
void on_ranks(std::uint32_t size, const std::string& store, const std::function<void(Collective&)>& body) {
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(size);
  for (std::uint32_t r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      try {
        auto c = make_collective(rank_options(store, r, size));
        body(*c);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

TEST(CollectiveBytes, RingAllreduceSendsWhatTheOthersReceive) {
  for (std::uint32_t R : {2u, 3u, 4u, 7u}) {
    for (std::uint64_t n : {1ull, 13ull, 4099ull, 3000001ull}) {
      std::uint64_t sent = 0, received = 0;
      for (std::uint32_t r = 0; r < R; ++r) {
        const CollectiveBytes b = ring_allreduce_bytes(4 * n, 4, R, r);
        sent += b.sent;
        received += b.received;
      }
      EXPECT_EQ(sent, received) << "R=" << R << " n=" << n;
      // At least the textbook ring volume 2(R-1)/R * S in total over the ranks.
      EXPECT_GE(sent, 2 * (R - 1) * 4 * n / R * 99 / 100) << "R=" << R << " n=" << n;
    }
  }
}

TEST(CollectiveBytes, RingAllreduceOfSmallBuffersIsTheTextbookVolume) {
  // Two segments per rank (S <= 2R MiB): each rank sends 2(R-1) of its 2R segments.
  const std::uint32_t R = 4;
  const std::uint64_t bytes = 4 * 8 * 1001;  // 8 segments of 1001 floats
  for (std::uint32_t r = 0; r < R; ++r) EXPECT_EQ(ring_allreduce_bytes(bytes, 4, R, r).sent, 2 * (R - 1) * bytes / R);
}

TEST(CollectiveBytes, AllgathervSendsAllButTheNextRanksBlock) {
  const std::vector<std::size_t> blocks = {5, 11, 0, 7};
  const CollectiveBytes b = ring_allgatherv_bytes(blocks, 1);
  EXPECT_EQ(b.sent, 5u + 11u + 7u);     // all but rank 2's
  EXPECT_EQ(b.received, 5u + 0u + 7u);  // all but its own
}

TEST(CollectiveBytes, BinomialBroadcastReachesEveryRankOnce) {
  for (std::uint32_t R : {2u, 3u, 5u, 8u}) {
    std::uint64_t sent = 0, received = 0;
    for (std::uint32_t r = 0; r < R; ++r) {
      sent += broadcast_bytes(10, R, r, 1).sent;
      received += broadcast_bytes(10, R, r, 1).received;
    }
    EXPECT_EQ(sent, 10u * (R - 1));
    EXPECT_EQ(received, 10u * (R - 1));
  }
}

class GlooRanks : public ::testing::TestWithParam<std::tuple<std::uint32_t, std::size_t>> {};

TEST_P(GlooRanks, AllreduceSumsAndMaxesRankUniqueValues) {
  const auto [R, n] = GetParam();
  testing::TempDir dir;
  on_ranks(R, dir / "store", [&, R = R, n = n](Collective& c) {
    const std::uint32_t r = c.rank();
    std::vector<float> f(n);
    std::vector<std::int32_t> k(n);
    std::vector<std::uint16_t> h(n), bf(n);
    std::vector<std::int8_t> i8(n);
    std::vector<std::int16_t> i16(n);
    for (std::size_t i = 0; i < n; ++i) {
      f[i] = static_cast<float>(1000 * r + i % 97);  // exact in fp32
      k[i] = static_cast<std::int32_t>((r * 7 + i) % 11);
      h[i] = quant::float_to_fp16(static_cast<float>(r + i % 5));  // small integers: exact sums in fp16/bf16
      bf[i] = quant::float_to_bf16(static_cast<float>(r + i % 5));
      i8[i] = static_cast<std::int8_t>(static_cast<int>(i % 7) - 3 * static_cast<int>(r));  // sums stay in int8
      i16[i] = static_cast<std::int16_t>(static_cast<int>(i % 1000) - 250 * static_cast<int>(r));
    }
    c.allreduce(f.data(), n, DType::kFloat32, ReduceOp::kSum);
    c.allreduce(k.data(), n, DType::kInt32, ReduceOp::kMax);
    c.allreduce(h.data(), n, DType::kFloat16, ReduceOp::kSum);
    c.allreduce(bf.data(), n, DType::kBFloat16, ReduceOp::kSum);
    c.allreduce(i8.data(), n, DType::kInt8, ReduceOp::kSum);
    c.allreduce(i16.data(), n, DType::kInt16, ReduceOp::kSum);
    for (std::size_t i = 0; i < n; ++i) {
      int want8 = 0, want16i = 0;
      for (std::uint32_t q = 0; q < R; ++q) {
        want8 += static_cast<int>(i % 7) - 3 * static_cast<int>(q);
        want16i += static_cast<int>(i % 1000) - 250 * static_cast<int>(q);
      }
      ASSERT_EQ(i8[i], want8) << "rank " << r << " element " << i;
      ASSERT_EQ(i16[i], want16i) << "rank " << r << " element " << i;
    }
    for (std::size_t i = 0; i < n; ++i) {
      float want = 0, want16 = 0;
      std::int32_t want_max = 0;
      for (std::uint32_t q = 0; q < R; ++q) {
        want += static_cast<float>(1000 * q + i % 97);
        want16 += static_cast<float>(q + i % 5);
        want_max = std::max(want_max, static_cast<std::int32_t>((q * 7 + i) % 11));
      }
      ASSERT_EQ(f[i], want) << "rank " << r << " element " << i;
      ASSERT_EQ(k[i], want_max) << "rank " << r << " element " << i;
      ASSERT_EQ(quant::fp16_to_float(h[i]), want16) << "rank " << r << " element " << i;
      ASSERT_EQ(quant::bf16_to_float(bf[i]), want16) << "rank " << r << " element " << i;
    }
    const CollectiveCounters cc = c.counters();
    EXPECT_EQ(cc.allreduce.calls, R > 1 ? 6u : 0u);
    const std::uint64_t want_sent = 2 * ring_allreduce_bytes(4 * n, 4, R, r).sent +
                                    2 * ring_allreduce_bytes(2 * n, 2, R, r).sent +
                                    ring_allreduce_bytes(2 * n, 2, R, r).sent + ring_allreduce_bytes(n, 1, R, r).sent;
    EXPECT_EQ(cc.allreduce.sent_bytes, want_sent);
  });
}

TEST_P(GlooRanks, AllgathervGathersUnevenBlocksInRankOrder) {
  const auto [R, n] = GetParam();
  testing::TempDir dir;
  on_ranks(R, dir / "store", [&, n = n](Collective& c) {
    const std::uint32_t r = c.rank();
    std::vector<std::uint8_t> mine(n % 50 + 3 * r);  // rank 0 may send nothing when n % 50 == 0
    for (std::size_t i = 0; i < mine.size(); ++i) mine[i] = static_cast<std::uint8_t>(31 * r + i);
    const auto all = allgather_blobs(c, mine.data(), mine.size());
    ASSERT_EQ(all.size(), c.size());
    for (std::uint32_t q = 0; q < c.size(); ++q) {
      ASSERT_EQ(all[q].size(), n % 50 + 3 * q);
      for (std::size_t i = 0; i < all[q].size(); ++i) ASSERT_EQ(all[q][i], static_cast<std::uint8_t>(31 * q + i));
    }
    std::vector<std::uint8_t> b(n + 1, static_cast<std::uint8_t>(r == c.size() - 1 ? 77 : 0));
    c.broadcast(b.data(), b.size(), c.size() - 1);
    for (auto v : b) ASSERT_EQ(v, 77);
  });
}

INSTANTIATE_TEST_SUITE_P(RanksBySizes, GlooRanks,
                         ::testing::Combine(::testing::Values(1u, 2u, 3u, 4u),
                                            ::testing::Values(std::size_t{1}, std::size_t{50}, std::size_t{1003},
                                                              std::size_t{70001})));

TEST(GlooFailure, TimeoutNamesTheRankThatNeverEntersTheCall) {
  testing::TempDir dir;
  const double timeout_s = 2.0;
  std::vector<std::string> errors(3);
  std::vector<int> blamed(3, -2);
  std::vector<double> seconds(3, 0);
  std::vector<std::thread> threads;
  std::atomic<int> finished{0};
  for (std::uint32_t r = 0; r < 3; ++r) {
    threads.emplace_back([&, r] {
      auto c = make_collective(rank_options(dir / "store", r, 3, timeout_s));
      std::vector<float> x(1000, 1.0f);
      c->allreduce(x.data(), x.size(), DType::kFloat32, ReduceOp::kSum);  // everyone: fine
      if (r == 2) {  // alive (heartbeat on) but never enters the second call
        while (finished.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return;
      }
      const auto t0 = std::chrono::steady_clock::now();
      try {
        c->allreduce(x.data(), x.size(), DType::kFloat32, ReduceOp::kSum);
      } catch (const CollectiveError& e) {
        errors[r] = e.what();
        blamed[r] = e.rank();
        EXPECT_EQ(e.kind(), CommError::Kind::kTimeout) << e.what();
      }
      seconds[r] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ++finished;
    });
  }
  for (auto& t : threads) t.join();
  for (std::uint32_t r = 0; r < 2; ++r) {
    EXPECT_EQ(blamed[r], 2) << errors[r];
    EXPECT_NE(errors[r].find("rank 2"), std::string::npos) << errors[r];
    // The timeout, then the diagnosis (3 heartbeats of 0.2 s), plus slack for a loaded machine.
    EXPECT_LT(seconds[r], timeout_s + 0.6 + 5.0);
  }
}

TEST(GlooFailure, RendezvousNamesTheRankThatNeverArrives) {
  testing::TempDir dir;
  try {
    make_collective(rank_options(dir / "store", 0, 2, 1.0));
    FAIL() << "rendezvous without rank 1 succeeded";
  } catch (const CollectiveError& e) {
    EXPECT_EQ(e.kind(), CommError::Kind::kTimeout);
    EXPECT_EQ(e.rank(), 1);
    EXPECT_NE(std::string(e.what()).find("rank(s) 1 did not arrive"), std::string::npos) << e.what();
  }
}

// Rank 1 died; rank 0 failed on it, recorded whom it blamed, and exited. Rank 2, which
// noticed only when rank 0's connections closed, finds two still heartbeats: it must
// name rank 1, not rank 0 (rank 2 blamed rank 0 in kill -9 trials before failure records
// named the rank blamed).
TEST(RankDiagnosis, ARankThatFailedAndExitedIsNotBlamedForItsSilence) {
  testing::TempDir dir;
  const std::string store = dir / "store";
  std::filesystem::create_directories(store);
  std::ofstream(store + "/heartbeat-0") << "40 12\n";
  std::ofstream(store + "/heartbeat-1") << "38 11\n";
  record_rank_failure(store, 0, 1, "rank 0: collective allreduce (call #12) failed: rank 1 stopped responding");
  RankDiagnosis d = diagnose_ranks(store, 3, 2, 12, 0.05);
  EXPECT_EQ(d.rank, 1) << d.text;
  EXPECT_EQ(d.text.rfind("rank 1 stopped responding", 0), 0u) << d.text;
  // Both recorded a failure: rank 0's record names the rank that failed first.
  record_rank_failure(store, 1, -1, "rank 1: out of memory");
  d = diagnose_ranks(store, 3, 2, 12, 0.05);
  EXPECT_EQ(d.rank, 1) << d.text;
  EXPECT_EQ(d.text.rfind("rank 1 failed first (rank 0 reported: ", 0), 0u) << d.text;
  // Without the records rank 0's silence is blamed first (lowest rank), as before.
  std::filesystem::remove(store + "/failed-0");
  std::filesystem::remove(store + "/failed-1");
  d = diagnose_ranks(store, 3, 2, 12, 0.05);
  EXPECT_EQ(d.rank, 0) << d.text;
  // A record blaming the reader itself points at the recorder.
  record_rank_failure(store, 0, 2, "rank 0: rank 2 never entered");
  record_rank_failure(store, 1, 2, "rank 1: rank 2 never entered");
  d = diagnose_ranks(store, 3, 2, 12, 0.05);
  EXPECT_EQ(d.rank, 0) << d.text;
  EXPECT_EQ(d.text.rfind("rank 0 failed: ", 0), 0u) << d.text;
}

TEST(CollectiveFactory, UnknownEngineAndBadRankAreTypedErrors) {
  testing::TempDir dir;
  CollectiveOptions o = rank_options(dir / "store", 0, 1);
  o.engine = "mpi";
  EXPECT_THROW(make_collective(o), CollectiveError);
  o.engine = "gloo";
  o.rank = 1;
  EXPECT_THROW(make_collective(o), CollectiveError);
}

}  // namespace
}  // namespace gradzip::comm
