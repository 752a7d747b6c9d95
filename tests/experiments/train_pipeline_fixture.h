// The fixture of the `gradzip train` pipeline tests (train_pipeline_test.cc, the
// simulation and local async/SSP; train_pipeline_processes_test.cc, slow: the same
// features as local processes): tiny runs (an MLP on 512 Fashion-MNIST images) into a
// scratch directory (TrainRunTest of gradzip_run_util.h), metrics.csv by column name.
#pragma once

#include <map>
#include <utility>

#include "tests/experiments/gradzip_run_util.h"

namespace gradzip::testing {

inline const std::string kTiny =
    " --model mlp --width 32 --train-subset 512 --test-subset 100 --epochs 2 --batch-size 32 "
    "--min-compress-numel 0 --bucket-mb 0.02 --first-bucket-mb 0.005 "
    "--torch-threads 1 --loader-threads 1 --lr 0.05 --data-dir " + kFashion;

/// metrics.csv as columns: name -> one value per row.
inline std::map<std::string, std::vector<double>> read_metrics(const fs::path& csv) {
  std::ifstream f(csv);
  std::string line;
  std::vector<std::string> names;
  std::map<std::string, std::vector<double>> cols;
  if (!std::getline(f, line)) return cols;
  std::stringstream header(line);
  for (std::string n; std::getline(header, n, ',');) names.push_back(n);
  while (std::getline(f, line)) {
    std::stringstream row(line);
    std::size_t i = 0;
    for (std::string v; std::getline(row, v, ',') && i < names.size(); ++i) {
      cols[names[i]].push_back(v.empty() ? 0.0 : std::stod(v));
    }
  }
  return cols;
}

class TrainPipeline : public TrainRunTest {
 protected:
  /// Runs `gradzip train <args>` with `workers` workers into run directory `name`.
  Result train(const std::string& name, const std::string& args, int workers = 2) {
    return gradzip("train --run-dir '" + (root_ / name).string() + "'" + kTiny + " --workers " +
                       std::to_string(workers) + " " + args,
                   root_ / (name + ".log"));
  }
  /// --mode async and --mode ssp under `cluster` complete with the staleness and PCIe
  /// columns in metrics.csv.
  void expect_async_and_ssp_run(const std::string& cluster) {
    struct Mode {
      std::string name, args;
    };
    for (const Mode& mode : {Mode{"async", "--mode async"}, Mode{"ssp", "--mode ssp --slack 1"}}) {
      const std::string name = cluster + "-" + mode.name;
      const Result r = train(name, "--cluster " + cluster + " " + mode.args);
      ASSERT_EQ(r.status, 0) << name << "\n" << r.output;
      const nlohmann::json summary = read_json(root_ / name / "summary.json");
      EXPECT_EQ(summary["status"], "complete") << name;
      EXPECT_EQ(summary["mode"], mode.name);
      auto m = read_metrics(root_ / name / "metrics.csv");
      ASSERT_EQ(m["epoch"].size(), 2u) << name;
      for (const char* col : {"push_staleness_mean", "push_staleness_max", "h2d_bytes", "d2h_bytes"}) {
        EXPECT_EQ(m[col].size(), 2u) << name << " column " << col;
      }
      EXPECT_GE(m["push_staleness_max"].back(), m["push_staleness_mean"].back()) << name;
      EXPECT_EQ(m["h2d_bytes"].back(), 0.0) << "no device copies on CPU";
      EXPECT_EQ(m["d2h_bytes"].back(), 0.0);
    }
  }
  /// A dense run and a --downlink `downlink` (a top-k 1% spec) --downlink-resync 4 run
  /// under `cluster`: the resyncs ran and found no drift, and the downlink moved under a
  /// third of the dense bytes. Returns both summaries.
  std::pair<nlohmann::json, nlohmann::json> expect_compressed_downlink(const std::string& cluster,
                                                                       const std::string& downlink) {
    Result r = train(cluster + "-dense", "--cluster " + cluster);
    EXPECT_EQ(r.status, 0) << r.output;
    r = train(cluster + "-topk", "--cluster " + cluster + " --downlink " + downlink + " --downlink-resync 4");
    EXPECT_EQ(r.status, 0) << r.output;
    const nlohmann::json dense = read_json(root_ / (cluster + "-dense") / "summary.json");
    const nlohmann::json topk = read_json(root_ / (cluster + "-topk") / "summary.json");
    EXPECT_GT(topk.value("downlink_resyncs", 0.0), 0.0) << cluster;
    EXPECT_EQ(topk.value("downlink_resync_max_abs_diff", -1.0), 0.0) << "no drift at any resync, " << cluster;
    EXPECT_LT(topk.value("bytes_down", 1e300), dense.value("bytes_down", 0.0) / 3) << cluster;
    return {dense, topk};
  }
};

}  // namespace gradzip::testing
