// The fresh rendezvous store of ranks no launcher prepares (comm/collective_store.h):
// the ranks, one of them late, meet in the directory rank 0 opened even when an earlier
// start left its own store and `current` behind, and then reduce over Gloo there; a
// store whose rank 0 is gone (still beacon) is never joined, and the wait for one ends
// with a timeout blaming rank 0.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "comm/collective.h"
#include "comm/collective_store.h"
#include "tests/comm/temp_dir.h"

namespace gradzip::comm {
namespace {
namespace fs = std::filesystem;

constexpr double kPeriodS = 0.1;

/// What an earlier start whose rank 0 died leaves: a store named in `current`, with a
/// beacon that no longer changes.
void leave_dead_start(const fs::path& base) {
  fs::create_directories(base / "start-00000000dead0000" / "beacon");
  std::ofstream(base / "start-00000000dead0000" / "beacon" / "heartbeat-0") << "41 0\n";
  std::ofstream(base / "current") << "start-00000000dead0000\n";
}

TEST(FreshStore, LateRanksMeetInRankZerosNewStoreAndReduceThere) {
  testing::TempDir tmp;
  const fs::path base = tmp / "collective";
  leave_dead_start(base);
  constexpr std::uint32_t kRanks = 3;
  std::vector<std::string> dirs(kRanks);
  std::vector<float> sums(kRanks, 0);
  std::vector<std::exception_ptr> errors(kRanks);
  std::vector<std::thread> threads;
  for (std::uint32_t r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      try {
        FreshStore own;
        if (r == 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the others arrive first
          own = open_fresh_store(base.string(), kPeriodS);
          dirs[r] = own.dir;
        } else {
          dirs[r] = join_fresh_store(base.string(), kPeriodS, 20);
        }
        CollectiveOptions o;
        o.rank = r;
        o.size = kRanks;
        o.store_dir = dirs[r];
        o.timeout_s = 20;
        o.heartbeat_s = kPeriodS;
        auto c = make_collective(o);
        float x = static_cast<float>(r + 1);
        c->allreduce(&x, 1, DType::kFloat32, ReduceOp::kSum);
        sums[r] = x;
        c->barrier();
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  for (std::uint32_t r = 0; r < kRanks; ++r) {
    EXPECT_EQ(dirs[r], dirs[0]) << "rank " << r;
    EXPECT_EQ(sums[r], 6.0f) << "rank " << r;
  }
  EXPECT_NE(dirs[0], (base / "start-00000000dead0000").string());
  EXPECT_FALSE(fs::exists(base / "start-00000000dead0000")) << "rank 0 removes the stores of earlier starts";
}

TEST(FreshStore, AStoreWhoseRankZeroIsGoneIsNeverJoined) {
  testing::TempDir tmp;
  const fs::path base = tmp / "collective";
  leave_dead_start(base);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    join_fresh_store(base.string(), kPeriodS, 1.0);
    FAIL() << "joined a store with a still beacon";
  } catch (const CollectiveError& e) {
    EXPECT_EQ(e.kind(), CommError::Kind::kTimeout);
    EXPECT_EQ(e.rank(), 0);
    EXPECT_NE(std::string(e.what()).find("still beacon"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(base.string()), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0 + 10 * kPeriodS);
  // A `current` naming something outside the base is ignored like no name at all.
  std::ofstream(base / "current") << "../../etc\n";
  try {
    join_fresh_store(base.string(), kPeriodS, 0.3);
    FAIL() << "joined a store named outside the base";
  } catch (const CollectiveError& e) {
    EXPECT_NE(std::string(e.what()).find("named no store"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gradzip::comm
