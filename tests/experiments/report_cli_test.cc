// End to end through the `gradzip` binary: two tiny training runs (identity in one
// process, fp16 as 2 worker + 1 shard processes over loopback ZeroMQ) write run
// directories, `gradzip report` compares them; bad input exits 2 with one line.
// Tiny on purpose (ResNet-20 at width 4, 256 Fashion-MNIST images, 2 epochs).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace {
namespace fs = std::filesystem;

const std::string kExe = GRADZIP_EXE;
const std::string kData = "/usr/share/datasets/fashion-mnist";

struct Result {
  int status = -1;
  std::string output;
};

Result run(const std::string& args, const fs::path& log) {
  const int rc = std::system((kExe + " " + args + " > '" + log.string() + "' 2>&1").c_str());
  Result r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
  std::ifstream f(log);
  std::ostringstream os;
  if (f) os << f.rdbuf();
  r.output = os.str();
  return r;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  return nlohmann::json::parse(f, nullptr, false);
}

int count_lines(const fs::path& p) {
  std::ifstream f(p);
  int n = 0;
  std::string line;
  while (std::getline(f, line)) n += line.empty() ? 0 : 1;
  return n;
}

class GradzipCli : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("gz-cli-" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(GradzipCli, TrainSimAndLocalThenReport) {
  if (!fs::exists(kData)) GTEST_SKIP() << "Fashion-MNIST not installed at " << kData << " (dataset-fashion-mnist)";
  const std::string common = "train --model resnet20 --width 4 --train-subset 256 --test-subset 100 --epochs 2 "
                             "--batch-size 32 --min-compress-numel 0 --log-level warn --data-dir " + kData;
  const Result sim = run(common + " --cluster sim --workers 2 --shards 1 --compressor identity --run-dir '" +
                             (root_ / "identity").string() + "'",
                         root_ / "sim.log");
  ASSERT_EQ(sim.status, 0) << sim.output;
  const Result local = run(common + " --cluster local --workers 2 --shards 1 --compressor fp16 --run-dir '" +
                               (root_ / "fp16").string() + "'",
                           root_ / "local.log");
  ASSERT_EQ(local.status, 0) << local.output;

  for (const char* name : {"identity", "fp16"}) {
    const fs::path dir = root_ / name;
    for (const char* f : {"config.ini", "metrics.csv", "events.jsonl", "summary.json", "host.json"}) {
      EXPECT_TRUE(fs::exists(dir / f)) << name << "/" << f;
    }
    const nlohmann::json s = read_json(dir / "summary.json");
    ASSERT_TRUE(s.is_object()) << name;
    EXPECT_EQ(s["status"], "complete") << name;
    EXPECT_EQ(s["workers"], 2);
    EXPECT_EQ(count_lines(dir / "metrics.csv"), 1 + 2) << "header + one row per epoch";
    EXPECT_GT(s["compute_seconds_per_step"].get<double>(), 0.0);
  }
  // The multi-process run counted real ZeroMQ framing in every worker.
  EXPECT_EQ(read_json(root_ / "fp16" / "summary.json")["cluster"], "local");
  EXPECT_TRUE(fs::exists(root_ / "fp16" / "procs" / "worker1.jsonl"));

  const Result rep = run("report '" + (root_ / "identity").string() + "' '" + (root_ / "fp16").string() +
                             "' --links eth1g,pcie3 --plots=false --out '" + (root_ / "rep").string() + "'",
                         root_ / "report.log");
  ASSERT_EQ(rep.status, 0) << rep.output;
  EXPECT_NE(rep.output.find("| identity | `none+identity` | 2 x 1 |"), std::string::npos) << rep.output;
  EXPECT_NE(rep.output.find("TTA eth1g"), std::string::npos);
  // Compression ratio = fp32 bytes / uplink payload bytes. Every bucket is compressed
  // (--min-compress-numel 0), so identity is below 1 only by message headers and the
  // handshake (a few percent on this tiny model), and fp16 sends half of identity's
  // element bytes: its ratio is close to twice identity's, never more.
  std::ifstream csv(root_ / "rep" / "report.csv");
  std::string header, line;
  std::getline(csv, header);
  double ratio_identity = 0, ratio_fp16 = 0;
  int rows = 0;
  while (std::getline(csv, line)) {
    ++rows;
    std::stringstream ss(line);
    std::string cell;
    std::vector<std::string> cells;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    ASSERT_GT(cells.size(), 7u) << line;
    (cells[0] == "\"identity\"" ? ratio_identity : ratio_fp16) = std::stod(cells[6]);
  }
  EXPECT_GT(ratio_identity, 0.85);
  EXPECT_LE(ratio_identity, 1.0);
  EXPECT_GT(ratio_fp16 / ratio_identity, 1.75);
  EXPECT_LE(ratio_fp16 / ratio_identity, 2.0);
  EXPECT_EQ(rows, 2);
}

TEST_F(GradzipCli, BadInputExitsTwoWithOneLine) {
  const Result r1 = run("report '" + (root_ / "no-such-run").string() + "'", root_ / "r1.log");
  EXPECT_EQ(r1.status, 2);
  EXPECT_NE(r1.output.find("not a directory"), std::string::npos) << r1.output;
  fs::create_directories(root_ / "empty");
  const Result r2 = run("report '" + (root_ / "empty").string() + "'", root_ / "r2.log");
  EXPECT_EQ(r2.status, 2);
  EXPECT_NE(r2.output.find("no run directories"), std::string::npos) << r2.output;
  const Result r3 = run("train --link eth40g", root_ / "r3.log");
  EXPECT_EQ(r3.status, 2);
  EXPECT_NE(r3.output.find("unknown link 'eth40g'"), std::string::npos) << r3.output;
  const Result r4 = run("sweep --file '" + (root_ / "none.sweep").string() + "'", root_ / "r4.log");
  EXPECT_EQ(r4.status, 2);
  EXPECT_NE(r4.output.find("cannot read sweep file"), std::string::npos) << r4.output;
  const Result r5 = run("report --links warp9 '" + (root_ / "empty").string() + "'", root_ / "r5.log");
  EXPECT_EQ(r5.status, 2);
}

}  // namespace
