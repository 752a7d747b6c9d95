// Worker checkpoints and the resume point (comm/checkpoint.h): a worker's memory states,
// model bytes and transport state round-trip (version 1 files, without transport state,
// still load); a missing, corrupt or foreign worker checkpoint is a
// CheckpointError of the right kind naming the file; find_resume_point takes the newest
// step at which every shard and worker file is valid and names what it passed over.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <xxhash.h>

#include "comm/checkpoint.h"

namespace gradzip::comm {
namespace {
namespace fs = std::filesystem;

constexpr std::uint64_t kHash = 0x5eed;
const std::vector<std::uint64_t> kBuckets = {5, 3};

class Checkpoints : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("gz_wckpt_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static WorkerCheckpoint worker(std::uint32_t rank, std::uint64_t step) {
    WorkerCheckpoint c;
    c.worker = rank;
    c.num_workers = 2;
    c.step = step;
    c.signature_hash = kHash;
    c.memory.resize(2);
    c.memory[0].residual = {1.5f, -2.0f, 0.25f, 3.0f, static_cast<float>(rank)};
    c.memory[0].steps = step;
    c.memory[1].residual = {0.5f, 0.5f, 0.5f};
    c.memory[1].momentum = {-1.0f, 0.0f, 1.0f};
    c.model_state = {1, 2, 3, static_cast<std::uint8_t>(step)};
    c.transport_state = {9, 8, 7, 6, 5, static_cast<std::uint8_t>(rank)};
    return c;
  }

  void write_shards(std::uint64_t step) const {
    for (std::uint32_t s = 0; s < 2; ++s) {
      ShardCheckpoint c;
      c.shard_id = s;
      c.num_shards = 2;
      c.version = step;
      c.signature_hash = kHash;
      c.params.assign(4, static_cast<float>(step));
      c.momentum.assign(4, 0.0f);
      c.replica.assign(4, 0.0f);
      write_checkpoint(dir_.string(), c);
    }
  }

  static CheckpointShape shape() {
    CheckpointShape s;
    s.num_workers = 2;
    s.signature_hash = kHash;
    s.shard_numel = {4, 4};
    s.bucket_numel = kBuckets;
    return s;
  }

  /// The kind of CheckpointError load_worker_checkpoint throws (and that it names `path`).
  CheckpointError::Kind load_error(std::uint32_t rank, std::uint64_t step, std::uint32_t workers = 2,
                                   std::uint64_t hash = kHash) const {
    try {
      load_worker_checkpoint(dir_.string(), rank, workers, step, hash, kBuckets);
    } catch (const CheckpointError& e) {
      EXPECT_EQ(e.path(), worker_checkpoint_path(dir_.string(), rank, step));
      EXPECT_NE(std::string(e.what()).find(e.path()), std::string::npos) << e.what();
      return e.kind();
    }
    ADD_FAILURE() << "no CheckpointError";
    return CheckpointError::Kind::kMissing;
  }

  void flip_byte(const fs::path& p, std::streamoff at) const {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(at);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x40);
    f.seekp(at);
    f.write(&c, 1);
  }

  fs::path dir_;
};

TEST_F(Checkpoints, WorkerStateRoundTrips) {
  const WorkerCheckpoint w = worker(1, 12);
  const std::string path = write_worker_checkpoint(dir_.string(), w);
  EXPECT_EQ(path, worker_checkpoint_path(dir_.string(), 1, 12));
  const WorkerCheckpoint r = load_worker_checkpoint(dir_.string(), 1, 2, 12, kHash, kBuckets);
  ASSERT_EQ(r.memory.size(), 2u);
  for (std::size_t b = 0; b < 2; ++b) {
    EXPECT_EQ(r.memory[b].residual, w.memory[b].residual);
    EXPECT_EQ(r.memory[b].momentum, w.memory[b].momentum);
    EXPECT_EQ(r.memory[b].steps, w.memory[b].steps);
  }
  EXPECT_EQ(r.model_state, w.model_state);
  EXPECT_EQ(r.transport_state, w.transport_state);
}

TEST_F(Checkpoints, VersionOneWorkerFilesWithoutTransportStateStillLoad) {
  // A version 1 file is a version 2 file without the u64 at offset 44 and the state at the end.
  WorkerCheckpoint w = worker(0, 8);
  const std::string path = write_worker_checkpoint(dir_.string(), w);
  std::ifstream in(path, std::ios::binary);
  std::vector<std::uint8_t> v2((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  std::vector<std::uint8_t> v1(v2.begin(), v2.begin() + 44);
  v1.insert(v1.end(), v2.begin() + 52, v2.end() - 8 - static_cast<std::ptrdiff_t>(w.transport_state.size()));
  v1[4] = 1;  // format version, little-endian
  const std::uint64_t sum = XXH3_64bits(v1.data(), v1.size());
  for (int i = 0; i < 8; ++i) v1.push_back(static_cast<std::uint8_t>(sum >> (8 * i)));
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(v1.data()),
                                                                  static_cast<std::streamsize>(v1.size()));
  const WorkerCheckpoint r = load_worker_checkpoint(dir_.string(), 0, 2, 8, kHash, kBuckets);
  EXPECT_EQ(r.memory[0].residual, w.memory[0].residual);
  EXPECT_EQ(r.model_state, w.model_state);
  EXPECT_TRUE(r.transport_state.empty());
}

TEST_F(Checkpoints, MissingCorruptAndForeignWorkerStateAreNamedTypedErrors) {
  EXPECT_EQ(load_error(0, 12), CheckpointError::Kind::kMissing);
  const std::string path = write_worker_checkpoint(dir_.string(), worker(0, 12));
  EXPECT_EQ(load_error(0, 12, /*workers=*/3), CheckpointError::Kind::kMismatch);
  EXPECT_EQ(load_error(0, 12, 2, /*hash=*/kHash + 1), CheckpointError::Kind::kMismatch);
  const auto size = static_cast<std::streamoff>(fs::file_size(path));
  for (std::streamoff at : {std::streamoff{0}, std::streamoff{20}, std::streamoff{60}, size - 9, size - 1}) {
    write_worker_checkpoint(dir_.string(), worker(0, 12));
    flip_byte(path, at);
    EXPECT_EQ(load_error(0, 12), CheckpointError::Kind::kCorrupt) << "byte " << at;
  }
  fs::resize_file(path, static_cast<std::uintmax_t>(size / 2));
  EXPECT_EQ(load_error(0, 12), CheckpointError::Kind::kCorrupt) << "truncated";
}

TEST_F(Checkpoints, ResumePointIsTheNewestCompleteStep) {
  for (std::uint64_t step : {4, 8}) {
    write_shards(step);
    for (std::uint32_t w = 0; w < 2; ++w) write_worker_checkpoint(dir_.string(), worker(w, step));
  }
  // Step 12: the shards wrote theirs, the run died before worker 1 wrote its state.
  write_shards(12);
  write_worker_checkpoint(dir_.string(), worker(0, 12));
  const ResumePoint p = find_resume_point(dir_.string(), shape());
  EXPECT_EQ(p.step, 8u);
  ASSERT_EQ(p.skipped.size(), 1u);
  EXPECT_NE(p.skipped[0].find(worker_checkpoint_path(dir_.string(), 1, 12)), std::string::npos) << p.skipped[0];
  // Step 8's worker 0 state corrupt: back to step 4, naming both problems.
  flip_byte(worker_checkpoint_path(dir_.string(), 0, 8), 50);
  const ResumePoint q = find_resume_point(dir_.string(), shape());
  EXPECT_EQ(q.step, 4u);
  EXPECT_EQ(q.skipped.size(), 2u);
  // An upper bound (the newest epoch the metrics hold) is honoured.
  EXPECT_EQ(find_resume_point(dir_.string(), shape(), 7).step, 4u);
}

TEST_F(Checkpoints, NoCompleteStepNamesTheWorkerFile) {
  write_shards(4);
  write_worker_checkpoint(dir_.string(), worker(0, 4));
  try {
    find_resume_point(dir_.string(), shape());
    FAIL() << "no CheckpointError";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.kind(), CheckpointError::Kind::kMissing);
    EXPECT_EQ(e.path(), worker_checkpoint_path(dir_.string(), 1, 4));
  }
  fs::remove_all(dir_);
  try {
    find_resume_point(dir_.string(), shape());
    FAIL() << "no CheckpointError";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.kind(), CheckpointError::Kind::kMissing) << "no checkpoint at all";
  }
}

}  // namespace
}  // namespace gradzip::comm
