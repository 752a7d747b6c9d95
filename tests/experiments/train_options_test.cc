// Options of the one training-config builder that reach libraries no command used to
// reach, through the binary: --augment and --tta (trainer/augment_spec.h), --curve-keys
// and `gradzip keys` (experiments/curve_keys.h), and the refusal of aggregation-only
// compressors (quant/aggregation.h) on the parameter-server path.
#include <sys/stat.h>

#include "tests/experiments/gradzip_run_util.h"

namespace gradzip::testing {
namespace {

const char* const kTrainingCommands[] = {"train", "ps", "worker", "launch"};

TEST_F(TrainRunTest, EveryTrainingCommandShowsTheSameAugmentationDefaults) {
  for (const char* c : kTrainingCommands) {
    const Result help = gradzip(std::string(c) + " --help", root_ / "help.log");
    ASSERT_EQ(help.status, 0) << c;
    for (const char* option : {"--augment", "--tta", "--curve-keys"}) {
      EXPECT_NE(help.output.find(option), std::string::npos) << c << " --help lacks " << option;
    }
    const Result config = gradzip(std::string(c) + " --print-config", root_ / "config.log");
    ASSERT_EQ(config.status, 0) << c << config.output;
    EXPECT_NE(config.output.find("\naugment = none\n"), std::string::npos) << c << ": default must be none";
    EXPECT_NE(config.output.find("\ntta = false\n"), std::string::npos) << c;
  }
}

TEST_F(TrainRunTest, BadAugmentSpecsNameTheirKey) {
  const std::pair<const char*, const char*> bad[] = {
      {"crop:padd=4", "unknown key 'padd'"},          {"blur", "unknown transform 'blur'"},
      {"crop:pad=999", "bad value '999' for pad"},     {"flip:p=0.5", "unknown key 'p'"},
      {"pad=4", "no transform before it"},            {"crop,crop", "'crop' given twice"},
      {"none,flip", "'none' cannot be combined"},
  };
  for (const auto& [spec, message] : bad) {
    const Result r = gradzip(std::string("worker --augment '") + spec + "'", root_ / "bad.log");
    EXPECT_EQ(r.status, 2) << spec;
    EXPECT_NE(r.output.find(message), std::string::npos) << spec << ": " << r.output;
  }
  // PCA jitter needs RGB data; Fashion-MNIST has one channel.
  const Result pca = gradzip("train --augment pca:sigma=0.1 --epochs 1" + kTinyRun, root_ / "pca.log");
  EXPECT_EQ(pca.status, 2) << pca.output;
  EXPECT_NE(pca.output.find("needs RGB"), std::string::npos) << pca.output;
}

TEST_F(TrainRunTest, AggregationOnlyCompressorsAreRefusedOnTheParameterServer) {
  // THC always; PowerSGD runs over the parameter server only as two round trips to one
  // shard (--shards 1, tests/experiments/train_ps_powersgd_test.cc): with more shards every
  // training command refuses it, naming the option.
  for (const char* c : {"train", "ps", "worker"}) {
    const Result thc = gradzip(std::string(c) + " --compressor ef+thc:rotate=true" + kTinyRun, root_ / "aggregation.log");
    EXPECT_EQ(thc.status, 2) << c << ": " << thc.output;
    EXPECT_NE(thc.output.find("aggregation-only"), std::string::npos) << c << ": " << thc.output;
    const std::string endpoints = std::string(c) == "worker" ? " --connect tcp://127.0.0.1:1,tcp://127.0.0.1:2" : "";
    const Result psgd = gradzip(std::string(c) + " --compressor powersgd:rank=4 --shards 2" + endpoints + kTinyRun,
                                root_ / "aggregation.log");
    EXPECT_EQ(psgd.status, 2) << c << ": " << psgd.output;
    EXPECT_NE(psgd.output.find("--shards 2"), std::string::npos) << c << ": " << psgd.output;
  }
}

TEST_F(TrainRunTest, AugmentationAndTtaReachTheTrainer) {
  auto run = [&](const std::string& name, const std::string& extra) {
    const fs::path dir = root_ / name;
    const Result r = gradzip("train --epochs 1 --compressor fp16" + kTinyRun + extra + " --run-dir '" + dir.string() +
                                 "'",
                             root_ / (name + ".log"));
    EXPECT_EQ(r.status, 0) << r.output;
    return dir;
  };
  const fs::path plain = run("plain", "");
  const fs::path augmented = run("augmented", " --augment crop:pad=2,flip,colour:brightness=0.1");
  const fs::path tta = run("tta", " --tta");
  const auto summary = read_json(augmented / "summary.json");
  EXPECT_EQ(summary["augment"], "crop:pad=2,flip,colour:brightness=0.1,contrast=0.2");
  EXPECT_EQ(read_json(tta / "summary.json")["tta"], true);
  const auto p = read_csv(plain / "metrics.csv"), a = read_csv(augmented / "metrics.csv"),
             t = read_csv(tta / "metrics.csv");
  ASSERT_EQ(p.size(), 2u);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_NE(p[1][3], a[1][3]) << "augmented images give another training loss";
  EXPECT_EQ(p[1][3], t[1][3]) << "TTA changes evaluation only";
  EXPECT_NE(p[1][5], t[1][5]) << "TTA gives another test loss";
}

TEST_F(TrainRunTest, KeysCommandWritesTheDocumentedLayout) {
  const fs::path keys = root_ / "keys";
  Result r = gradzip("keys --out '" + keys.string() + "' --workers 3", root_ / "keys.log");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* f : {"server.key", "server.pub", "authorized_keys", "worker0.key", "worker1.key", "worker2.key"}) {
    EXPECT_TRUE(fs::exists(keys / f)) << f;
  }
  for (const char* secret : {"server.key", "worker2.key"}) {
    struct stat st {};
    ASSERT_EQ(::stat((keys / secret).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0077, 0u) << secret << " must be readable by its owner only";
  }
  const std::string pub = slurp(keys / "server.pub");
  EXPECT_EQ(pub.size(), 41u) << "one Z85 key and a newline";
  EXPECT_EQ(slurp(keys / "server.key").substr(0, 41), pub) << "server.pub is the key pair's public half";
  std::istringstream authorized(slurp(keys / "authorized_keys"));
  for (int w = 0; w < 3; ++w) {
    std::string line;
    ASSERT_TRUE(std::getline(authorized, line));
    EXPECT_EQ(line + "\n", slurp(keys / ("worker" + std::to_string(w) + ".key")).substr(0, 41)) << w;
  }
  r = gradzip("keys --out '" + keys.string() + "'", root_ / "again.log");
  EXPECT_EQ(r.status, 1) << "existing keys are not replaced without --force";
  EXPECT_NE(r.output.find("--force"), std::string::npos) << r.output;
}

TEST_F(TrainRunTest, LocalRunWithCurveKeys) {
  const fs::path keys = root_ / "keys", dir = root_ / "run";
  ASSERT_EQ(gradzip("keys --out '" + keys.string() + "' --workers 2", root_ / "keys.log").status, 0);
  const Result r = gradzip("train --cluster local --epochs 1 --compressor fp16 --curve-keys '" + keys.string() + "'" +
                               kTinyRun + " --run-dir '" + dir.string() + "'",
                           root_ / "run.log");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_json(dir / "summary.json")["status"], "complete");
  EXPECT_NE(slurp(dir / "procs" / "shard0.log").find("CURVE on"), std::string::npos);
  // Three workers need three key pairs: refused before any process starts, naming the file.
  std::string three_workers = kTinyRun;
  three_workers.replace(three_workers.find("--workers 2"), 11, "--workers 3");
  const Result three = gradzip("train --cluster local --epochs 1 --curve-keys '" + keys.string() + "'" +
                                   three_workers + " --run-dir '" + (root_ / "three").string() + "'",
                               root_ / "three.log");
  EXPECT_EQ(three.status, 2) << three.output;
  EXPECT_NE(three.output.find("worker2.key"), std::string::npos) << three.output;
  const Result none = gradzip("worker --curve-keys '" + (root_ / "absent").string() + "'", root_ / "absent.log");
  EXPECT_EQ(none.status, 2) << none.output;
  EXPECT_NE(none.output.find("gradzip keys --out"), std::string::npos) << none.output;
}

}  // namespace
}  // namespace gradzip::testing
