// `gradzip train --aggregation ps --compressor powersgd:..` (PowerSGD over the parameter
// server, two round trips to one shard per step) through the binary: with the seeds of a
// `--aggregation powersgd` run (two allreduces per step) it learns bitwise the same, epoch
// by epoch, as threads (sim) and as real shard and worker processes on loopback (local),
// and ends with bitwise the same parameters (the final checkpoints' parameter bytes); it
// sends fewer bytes up than the dense PS; options it cannot run are usage errors naming
// the option, and --help describes it.
#include "tests/experiments/gradzip_run_util.h"

namespace gradzip::testing {
namespace {

const std::string kRun = kTinyRun + " --lr-schedule constant --epochs 2 --checkpoint-every 2";
const std::string kPowerSgd = " --compressor powersgd:rank=1,min_numel=64";

/// Epoch, step, train loss/accuracy, test loss/accuracy of every metrics row.
std::vector<std::vector<std::string>> learning_columns(const fs::path& run) {
  std::vector<std::vector<std::string>> out;
  for (const auto& row : read_csv(run / "metrics.csv")) {
    out.push_back({row.at(0), row.at(1), row.at(3), row.at(4), row.at(5), row.at(6)});
  }
  return out;
}

/// The parameters and momentum in the newest one-shard checkpoint of a run
/// (comm/checkpoint.h: n at offset 24, then from offset 40 n fp32 parameters and n fp32
/// momentum values), which the PS shard and the collectives' rank 0 write in one format.
/// (The rest differs by design: the signature hash names the aggregation's signature, and
/// the downlink replica is the PS's.)
std::string final_parameters(const fs::path& run) {
  fs::path newest;
  for (const auto& e : fs::directory_iterator(run / "checkpoints")) {
    const std::string name = e.path().filename().string();
    if (name.rfind("shard-0-step-", 0) == 0 && (newest.empty() || name > newest.filename().string())) newest = e.path();
  }
  if (newest.empty()) return {};
  const std::string bytes = slurp(newest);
  if (bytes.size() < 40) return {};
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<std::uint8_t>(bytes[24 + i]);
  if (bytes.size() < 40 + 8 * n) return {};
  return bytes.substr(40, 8 * n);
}

class PsPowerSgdTrain : public TrainRunTest {};

TEST_F(PsPowerSgdTrain, SimAndLocalRunsLearnBitwiseLikeThePowerSgdAllreduce) {
  const fs::path ref = root_ / "allreduce";
  Result r = gradzip("train" + kRun + kPowerSgd + " --cluster sim --aggregation powersgd --run-dir '" + ref.string() + "'",
                     root_ / "allreduce.log");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto reference = learning_columns(ref);
  ASSERT_EQ(reference.size(), 3u);
  const std::string ref_params = final_parameters(ref);
  ASSERT_FALSE(ref_params.empty()) << "the allreduce run wrote no checkpoint";
  for (const std::string cluster : {"sim", "local"}) {
    const fs::path run = root_ / ("ps_" + cluster);
    r = gradzip("train" + kRun + kPowerSgd + " --cluster " + cluster + " --aggregation ps --shards 1 --run-dir '" +
                    run.string() + "'",
                root_ / (cluster + ".log"));
    ASSERT_EQ(r.status, 0) << cluster << ": " << r.output;
    // Two workers: every sum has two addends, the same in either order, so the runs
    // agree bit for bit, not just within fp32 summation-order tolerance.
    EXPECT_EQ(learning_columns(run), reference) << cluster;
    EXPECT_TRUE(final_parameters(run) == ref_params) << cluster << ": final parameters or momentum differ";
    const auto summary = read_json(run / "summary.json");
    EXPECT_EQ(summary["status"], "complete") << cluster;
    EXPECT_EQ(summary["shards"], 1) << cluster;
    EXPECT_NE(summary["aggregation_spec"].get<std::string>(), "") << cluster;
  }
  // The dense PS of the same run sends every gradient value up; PowerSGD its factors.
  r = gradzip("train" + kRun + " --cluster sim --aggregation ps --shards 1 --run-dir '" + (root_ / "dense").string() + "'",
              root_ / "dense.log");
  ASSERT_EQ(r.status, 0) << r.output;
  auto up_bytes = [&](const fs::path& run) { return std::stod(read_csv(run / "metrics.csv").back().at(7)); };
  EXPECT_LT(up_bytes(root_ / "ps_sim"), 0.5 * up_bytes(root_ / "dense"));
}

TEST_F(PsPowerSgdTrain, OptionsItCannotRunAreUsageErrorsAndHelpDescribesIt) {
  const std::string base = "train" + kTinyRun + " --cluster sim --aggregation ps --run-dir '" + (root_ / "x").string() + "'";
  const std::pair<std::string, std::string> cases[] = {
      {kPowerSgd + " --shards 2", "--shards 2"},
      {kPowerSgd + " --shards 1 --mode async", "--mode async"},
      {" --compressor ef+powersgd:rank=1 --shards 1", "keeps its own error feedback"},
      {kPowerSgd + " --shards 1 --downlink qsgd:bits=4", "--downlink"},
  };
  for (const auto& [args, says] : cases) {
    const Result r = gradzip(base + args, root_ / "x.log");
    EXPECT_EQ(r.status, 2) << args << ": " << r.output;
    EXPECT_NE(r.output.find(says), std::string::npos) << args << ": " << r.output;
  }
  const Result help = gradzip("train --help", root_ / "help.log");
  EXPECT_NE(help.output.find("PowerSGD over the parameter server"), std::string::npos) << help.output;
}

}  // namespace
}  // namespace gradzip::testing
