// experiments/repro/claims.py on synthetic run directories (summary.json, config.ini,
// metrics.csv as `gradzip train` writes them): runs are matched to a claim by exact
// configuration, differences count only beyond the seed noise, bytes are reported up and
// up + down, and bad input gives exit status 2; publish.py turns a study into a results
// folder. Skips when no /usr/bin/python3 is found.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {
namespace fs = std::filesystem;

const fs::path kClaims = fs::path(GRADZIP_SOURCE_DIR) / "experiments" / "repro" / "claims.py";
const char* const kPython = "/usr/bin/python3";

std::string read(const fs::path& p) {
  std::ifstream f(p);
  std::ostringstream os;
  if (f) os << f.rdbuf();
  return os.str();
}

class ClaimsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("gz-claims-" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "runs");
  }
  void TearDown() override { fs::remove_all(root_); }

  /// One finished run: `requested` as config.ini's compressor, `canonical` as summary.json's,
  /// final accuracy `acc` (fraction), cumulative wire bytes `up` and `down` (all workers),
  /// `extra_config` appended to config.ini (a `downlink =` there replaces the dense one).
  void run(const std::string& name, const std::string& requested, const std::string& canonical, int seed,
           double acc, double up = 1e6, double down = 8e6, const std::string& extra_config = "") {
    const fs::path dir = root_ / "runs" / name;
    fs::create_directories(dir);
    std::ofstream(dir / "summary.json") << R"({"status": "complete", "compressor": ")" << canonical
                                        << R"(", "workers": 4, "final_test_accuracy": )" << acc << "}";
    std::ofstream(dir / "config.ini") << "# gradzip train: resolved configuration\n[train]\nmodel = resnet20\n"
                                      << "compressor = " << requested << "\nmemory =\n"
                                      << (extra_config.find("downlink =") == std::string::npos ? "downlink = dense\n" : "")
                                      << "seed = " << seed
                                      << "\nrun-dir = " << dir.string() << "\n" << extra_config;
    std::ofstream(dir / "metrics.csv") << "epoch,step,seconds,test_accuracy,up_payload_bytes,up_framing_bytes,"
                                          "up_tcpip_bytes,down_payload_bytes,down_framing_bytes,down_tcpip_bytes\n"
                                       << "1,100,10," << acc << "," << up << ",0,0," << down << ",0,0\n";
  }
  /// Three seeds of one configuration with final accuracies `accs` (percent).
  void seeds(const std::string& tag, const std::string& requested, const std::string& canonical,
             const std::vector<double>& accs, double up = 1e6, double down = 8e6, const std::string& extra_config = "") {
    for (std::size_t i = 0; i < accs.size(); ++i) {
      run(tag + "-" + std::to_string(i + 1), requested, canonical, static_cast<int>(i + 1), accs[i] / 100, up, down,
          extra_config);
    }
  }
  /// claims.py's stdout; `code` gets its exit status.
  std::string claims(int* code, const std::string& args = "") {
    const std::string cmd = std::string(kPython) + " '" + kClaims.string() + "' --runs '" + (root_ / "runs").string() +
                            "' " + args + " > '" + (root_ / "out.md").string() + "' 2>&1";
    const int rc = std::system(cmd.c_str());
    *code = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
    return read(root_ / "out.md");
  }
  /// The claims-table row whose first cell starts with `title`.
  static std::string row(const std::string& md, const std::string& title) {
    const auto at = md.find("| " + title);
    return at == std::string::npos ? "" : md.substr(at, md.find('\n', at) - at);
  }
  bool have_python() const { return fs::exists(kPython); }

  fs::path root_;
};

TEST_F(ClaimsTest, MatchesRunsByExactSpec) {
  if (!have_python()) GTEST_SKIP() << "no " << kPython;
  seeds("identity", "identity", "none+identity", {90.0, 90.1, 89.9}, 8e6);
  // Top-k with a fixed k: its canonical spec still holds the default ratio=0.01, and it
  // is as accurate as the baseline, but it is not "top-k 1%".
  seeds("topk-k5", "ef+topk:k=5", "ef+topk:ratio=0.01,k=5,values=fp32", {90.0, 90.1, 89.9});
  // QSGD with EF matches the baseline, QSGD without EF does not: the claim is about the latter.
  seeds("qsgd-ef", "ef+qsgd:bits=4", "ef+qsgd:bits=4,bucket=512,norm=l2", {90.0, 90.1, 89.9});
  seeds("qsgd", "qsgd:bits=4", "none+qsgd:bits=4,bucket=512,norm=l2", {80.0, 80.1, 79.9});
  int code = 0;
  const std::string md = claims(&code);
  ASSERT_EQ(code, 0) << md;
  EXPECT_NE(row(md, "top-k 1% + EF").find("n/a (not run: `ef+topk:ratio=0.01`)"), std::string::npos) << md;
  const std::string qsgd = row(md, "QSGD 4-bit");
  EXPECT_NE(qsgd.find("`qsgd:bits=4` 80.00 ± 0.10 % (3 seeds)"), std::string::npos) << md;
  EXPECT_NE(qsgd.find("**does not hold**"), std::string::npos) << md;
  // Every configuration is its own row of the runs table.
  for (const char* label : {"| `ef+topk:k=5` | 3 |", "| `ef+qsgd:bits=4` | 3 |", "| `qsgd:bits=4` | 3 |"}) {
    EXPECT_NE(md.find(label), std::string::npos) << label << "\n" << md;
  }
}

TEST_F(ClaimsTest, DifferencesCountOnlyBeyondTheNoise) {
  if (!have_python()) GTEST_SKIP() << "no " << kPython;
  // Baseline 90.0 ± 2.0 over three seeds.
  seeds("identity", "identity", "none+identity", {88.0, 90.0, 92.0});
  // 1.5 points below with the same spread: 2 SE = 2 sqrt(4/3 + 4/3) = 3.27 points, so the
  // gap might be within the 1-point tolerance or not: inconclusive.
  seeds("topk", "ef+topk:ratio=0.01", "ef+topk:ratio=0.01,k=0,values=fp32", {86.5, 88.5, 90.5});
  // 0.5 points below: within tolerance at the point estimate, but the noise band reaches
  // far past it: inconclusive, not "holds".
  seeds("dgc", "ef+dgc:ratio=0.001", "ef+dgc:ratio=0.001,sample=0.001,warmup_steps=0,values=fp32", {87.5, 89.5, 91.5});
  // Far below beyond any noise: does not hold.
  seeds("qsgd", "qsgd:bits=4", "none+qsgd:bits=4,bucket=512,norm=l2", {70.0, 70.5, 71.0});
  // Sign: EF beats no EF beyond the noise (+29 ± 1.63), but its gap to the baseline,
  // 0.00 ± 2.58, reaches past -1: the claim as a whole is inconclusive.
  seeds("sign", "scaled-sign", "none+scaled-sign:bucket=512", {60.0, 61.0, 62.0});
  seeds("sign-ef", "ef+scaled-sign", "ef+scaled-sign:bucket=512", {89.0, 90.0, 91.0});
  int code = 0;
  std::string md = claims(&code);
  ASSERT_EQ(code, 0) << md;
  EXPECT_NE(row(md, "top-k 1% + EF").find("**inconclusive** (-1.50 ± 3.27 pts vs baseline"), std::string::npos) << md;
  EXPECT_NE(row(md, "DGC 0.1% + EF").find("**inconclusive** (-0.50 ± 3.27 pts"), std::string::npos) << md;
  EXPECT_NE(row(md, "QSGD 4-bit").find("**does not hold**"), std::string::npos) << md;
  const std::string sign = row(md, "EF fixes sign");
  EXPECT_NE(sign.find("**inconclusive**"), std::string::npos) << md;
  EXPECT_NE(sign.find("over `scaled-sign` +29.00 ± 1.63 pts"), std::string::npos) << md;

  // The same gaps with a tight spread are beyond the noise: top-k 1.5 points below
  // (2 SE = 0.16) does not hold; DGC 0.5 below holds; EF sign now holds.
  fs::remove_all(root_ / "runs");
  seeds("identity", "identity", "none+identity", {89.9, 90.0, 90.1});
  seeds("topk", "ef+topk:ratio=0.01", "ef+topk:ratio=0.01,k=0,values=fp32", {88.4, 88.5, 88.6});
  seeds("dgc", "ef+dgc:ratio=0.001", "ef+dgc:ratio=0.001,sample=0.001,warmup_steps=0,values=fp32", {89.4, 89.5, 89.6});
  seeds("sign", "scaled-sign", "none+scaled-sign:bucket=512", {60.0, 61.0, 62.0});
  seeds("sign-ef", "ef+scaled-sign", "ef+scaled-sign:bucket=512", {89.9, 90.0, 90.1});
  md = claims(&code);
  ASSERT_EQ(code, 0) << md;
  EXPECT_NE(row(md, "top-k 1% + EF").find("**does not hold** (-1.50 ± 0.16 pts"), std::string::npos) << md;
  EXPECT_NE(row(md, "DGC 0.1% + EF").find("**holds** (-0.50 ± 0.16 pts"), std::string::npos) << md;
  EXPECT_NE(row(md, "EF fixes sign").find("**holds**"), std::string::npos) << md;

  // One seed: no noise estimate, so no verdict either way.
  fs::remove_all(root_ / "runs");
  seeds("identity", "identity", "none+identity", {90.0});
  seeds("topk", "ef+topk:ratio=0.01", "ef+topk:ratio=0.01,k=0,values=fp32", {70.0});
  md = claims(&code);
  EXPECT_NE(row(md, "top-k 1% + EF").find("**inconclusive** (-20.00 pts vs baseline (fewer than 2 seeds"),
            std::string::npos)
      << md;
}

TEST_F(ClaimsTest, ReportsTotalBytesAndKeepsDifferentSettingsApart) {
  if (!have_python()) GTEST_SKIP() << "no " << kPython;
  // Uplink 2.0 MB, downlink 30.4 MB per run: the total is 32.4 MB.
  run("topk", "ef+topk:ratio=0.01", "ef+topk:ratio=0.01,k=0,values=fp32", 1, 0.9, 2.0e6, 30.4e6);
  run("identity", "identity", "none+identity", 1, 0.9, 30.4e6, 30.4e6);
  int code = 0;
  std::string md = claims(&code);
  ASSERT_EQ(code, 0) << md;
  EXPECT_NE(md.find("| `ef+topk:ratio=0.01` | 1 | 90.00 ± n/a % (1 seed) | 2.0 | 32.4 | 15.2x |"), std::string::npos)
      << md;
  // A second identity run with other epochs is not a seed of the first.
  run("identity-long", "identity", "none+identity", 2, 0.95, 30.4e6, 30.4e6, "epochs = 9\n");
  md = claims(&code);
  ASSERT_EQ(code, 0) << md;
  EXPECT_NE(md.find("| `identity [epochs=9]` | 1 |"), std::string::npos) << md;
  EXPECT_NE(row(md, "top-k 1% + EF").find("n/a (`identity` was run with different settings"), std::string::npos)
      << md;
}

// PowerSGD runs as --aggregation powersgd with one shard, the bidirectional runs with a
// compressed --downlink: each claim takes only runs with its own aggregation and downlink;
// keys a newer binary writes at the older behaviour (first-bucket-mb = 0), timing keys
// (overlap, encode-threads) and the shard count of a collective run split no
// configurations; a run still going is left out.
TEST_F(ClaimsTest, PowerSgdAndBidirectionalRunsMatchTheirOwnClaims) {
  if (!have_python()) GTEST_SKIP() << "no " << kPython;
  const std::string old_ps = "shards = 2\n";
  const std::string new_ps =
      "shards = 2\naggregation = ps\noverlap = on\nencode-threads = 2\nfirst-bucket-mb = 0\ndownlink-resync = 0\n";
  seeds("identity", "identity", "none+identity", {90.0, 90.1, 89.9}, 8e6, 8e6, old_ps);
  seeds("topk", "ef+topk:ratio=0.01", "ef+topk:ratio=0.01,k=0,values=fp32", {90.0, 90.1, 89.9}, 1e6, 8e6, old_ps);
  // Top-k both ways: 1 MB up, 1 MB down; far below the baseline.
  seeds("topk-bidir", "ef+topk:ratio=0.01", "ef+topk:ratio=0.01,k=0,values=fp32", {80.0, 80.1, 79.9}, 1e6, 1e6,
        new_ps + "downlink = ef+topk:ratio=0.01\n");
  seeds("powersgd", "powersgd:rank=4", "none+identity", {89.9, 90.0, 90.1}, 2e6, 2e6,
        "shards = 1\naggregation = powersgd\noverlap = off\nencode-threads = 2\nfirst-bucket-mb = 0\n");
  // A PowerSGD run still going: summary.json says so and metrics.csv has no rows yet.
  fs::create_directories(root_ / "runs" / "powersgd-running");
  std::ofstream(root_ / "runs" / "powersgd-running" / "summary.json") << R"({"status": "running", "compressor": "x"})";
  std::ofstream(root_ / "runs" / "powersgd-running" / "metrics.csv") << "epoch,step\n";
  int code = 0;
  const std::string md = claims(&code);
  ASSERT_EQ(code, 0) << md;
  for (const char* label : {"| `identity` | 3 |", "| `ef+topk:ratio=0.01` | 3 |",
                            "| `ef+topk:ratio=0.01 (downlink ef+topk:ratio=0.01)` | 3 |",
                            "| `powersgd:rank=4 (aggregation powersgd)` | 3 |"}) {
    EXPECT_NE(md.find(label), std::string::npos) << label << "\n" << md;
  }
  EXPECT_NE(md.find("1 unfinished run(s) left out."), std::string::npos) << md;
  EXPECT_NE(row(md, "top-k 1% + EF ≈").find("**holds**"), std::string::npos) << md;
  const std::string bidir = row(md, "bidirectional top-k 1% + EF");
  EXPECT_NE(bidir.find("**does not hold**"), std::string::npos) << md;
  EXPECT_NE(bidir.find("uplink 8x, total (up + down) 8.0x smaller"), std::string::npos) << md;  // 16 MB vs 2 MB
  const std::string powersgd = row(md, "PowerSGD rank 4");
  EXPECT_NE(powersgd.find("`powersgd:rank=4` (aggregation `powersgd`) 90.00 ± 0.10 % (3 seeds)"), std::string::npos)
      << md;
  EXPECT_NE(powersgd.find("**holds**"), std::string::npos) << md;
  EXPECT_NE(row(md, "bidirectional scaled sign").find("n/a (not run: `ef+scaled-sign` (downlink `ef+scaled-sign`))"),
            std::string::npos)
      << md;
}

// --plot draws the per-configuration figure (PNG and SVG) beside the markdown report.
TEST_F(ClaimsTest, PlotWritesAccuracyAgainstBytesFigure) {
  if (!have_python()) GTEST_SKIP() << "no " << kPython;
  if (std::system((std::string(kPython) + " -c 'import matplotlib' 2>/dev/null").c_str()) != 0) {
    GTEST_SKIP() << "no matplotlib for " << kPython << " (Debian: python3-matplotlib)";
  }
  seeds("identity", "identity", "none+identity", {90.0, 90.1, 89.9}, 8e6);
  seeds("topk", "ef+topk:ratio=0.01", "ef+topk:ratio=0.01,k=0,values=fp32", {89.0, 89.1}, 1e6);
  int code = 0;
  const std::string md = claims(&code, "--plot '" + (root_ / "fig").string() + "'");
  ASSERT_EQ(code, 0) << md;
  EXPECT_EQ(read(root_ / "fig" / "claims_accuracy_vs_bytes.png").substr(0, 4), "\x89PNG") << md;
  EXPECT_NE(read(root_ / "fig" / "claims_accuracy_vs_bytes.svg").find("<svg"), std::string::npos) << md;
}

// experiments/repro/publish.py: the study's report files, the small files of each
// complete run (no logs), host.json with the machine and build, command.txt, and a
// README with the partial-run note, the figure and the claims table.
TEST_F(ClaimsTest, PublishWritesResultsFolder) {
  if (!have_python()) GTEST_SKIP() << "no " << kPython;
  seeds("identity", "identity", "none+identity", {90.0, 90.1, 89.9});
  for (int i = 1; i <= 3; ++i) {
    const fs::path run = root_ / "runs" / ("identity-" + std::to_string(i));
    std::ofstream(run / "host.json") << R"({"build": {"git_revision": "abc123", "compiler": "GCC 12"},
        "host": {"cpu_model": "Test CPU", "logical_cores": 2, "memory_bytes": 4294967296, "os": "Linux"},
        "torch_version": "1.13.0"})";
    std::ofstream(run / "log.txt") << "a log\n";
  }
  fs::create_directories(root_ / "runs" / "fp16-1");
  std::ofstream(root_ / "runs" / "fp16-1" / "summary.json") << R"({"status": "running", "compressor": "x"})";
  fs::create_directories(root_ / "report");
  int code = 0;
  std::ofstream(root_ / "report" / "codec_study.md") << claims(&code);
  ASSERT_EQ(code, 0);
  std::ofstream(root_ / "report" / "report.md") << "the report\n";
  std::ofstream(root_ / "report" / "notes.txt") << "not a report file\n";
  const fs::path dest = root_ / "results";
  const std::string publish = (kClaims.parent_path() / "publish.py").string();
  auto run_publish = [&](const std::string& study) {
    const std::string cmd = std::string(kPython) + " '" + publish + "' --study '" + study + "' --dest '" +
                            dest.string() + "' --title 'A study' --command 'run it --now' --expected 4 " +
                            "--wall-clock '12 s on a test' > '" + (root_ / "publish.log").string() + "' 2>&1";
    const int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
  };
  ASSERT_EQ(run_publish(root_.string()), 0) << read(root_ / "publish.log");
  const std::string readme = read(dest / "README.md");
  EXPECT_NE(readme.find("**Partial: 3 of 4 runs finished**"), std::string::npos) << readme;
  EXPECT_NE(readme.find("Test CPU, 2 logical cores, 4.0 GiB memory, Linux"), std::string::npos) << readme;
  EXPECT_NE(readme.find("gradzip abc123 (GCC 12, torch 1.13.0) for 3 runs"), std::string::npos) << readme;
  EXPECT_NE(readme.find("Wall-clock: 12 s on a test."), std::string::npos) << readme;
  EXPECT_NE(readme.find("![accuracy against bytes](claims_accuracy_vs_bytes.png)"), std::string::npos) << readme;
  EXPECT_NE(readme.find("| QSGD 4-bit ≈ baseline"), std::string::npos) << readme;
  EXPECT_EQ(read(dest / "command.txt"), "run it --now\n");
  EXPECT_EQ(read(dest / "report.md"), "the report\n");
  EXPECT_FALSE(fs::exists(dest / "notes.txt"));
  EXPECT_TRUE(fs::exists(dest / "runs" / "identity-2" / "summary.json"));
  EXPECT_TRUE(fs::exists(dest / "runs" / "identity-2" / "metrics.csv"));
  EXPECT_FALSE(fs::exists(dest / "runs" / "identity-2" / "log.txt"));
  EXPECT_FALSE(fs::exists(dest / "runs" / "fp16-1"));
  const std::string host = read(dest / "host.json");
  EXPECT_NE(host.find("\"runs_complete\": 3"), std::string::npos) << host;
  EXPECT_NE(host.find("\"cpu_model\": \"Test CPU\""), std::string::npos) << host;
  EXPECT_EQ(run_publish((root_ / "nowhere").string()), 2);
  EXPECT_NE(read(root_ / "publish.log").find("publish: "), std::string::npos);
}

TEST_F(ClaimsTest, BadInputIsExitStatus2) {
  if (!have_python()) GTEST_SKIP() << "no " << kPython;
  int code = 0;
  std::string out = claims(&code);  // empty folder
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("no run directories"), std::string::npos) << out;
  fs::create_directories(root_ / "runs" / "broken");
  std::ofstream(root_ / "runs" / "broken" / "summary.json") << "{not json";
  out = claims(&code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("summary.json"), std::string::npos) << out;
}

}  // namespace
