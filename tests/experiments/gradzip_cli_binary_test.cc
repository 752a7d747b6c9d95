// Runs the built `gradzip` executable as a subprocess: the command table, --help of every
// command, exit codes and one-line errors, config file + override, --print-config round
// trip, and the fully implemented `compressors` and `version` commands.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#ifndef GRADZIP_EXE
#error "GRADZIP_EXE must name the gradzip executable"
#endif

namespace {

const char* const kCommands[] = {"train", "launch", "ps", "worker", "pack",
                                 "compressors", "placement", "report", "keys", "version"};

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

class GradzipBinary : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("gradzip_bin_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  /// Runs `gradzip <args>` (args are shell words; the tests pass only safe text).
  Result run(const std::string& args) const {
    const auto out = dir_ / "stdout";
    const auto err = dir_ / "stderr";
    const std::string cmd = std::string("'") + GRADZIP_EXE + "' " + args + " >'" + out.string() + "' 2>'" +
                            err.string() + "' </dev/null";
    const int status = std::system(cmd.c_str());
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }

  static int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

  std::filesystem::path dir_;
};

TEST_F(GradzipBinary, TopLevelHelpListsEveryCommand) {
  const Result r = run("--help");
  EXPECT_EQ(r.code, 0);
  for (const char* c : kCommands) EXPECT_THAT(r.out, ::testing::HasSubstr(std::string("  ") + c + " "));
  EXPECT_TRUE(r.err.empty());
}

TEST_F(GradzipBinary, EveryCommandHasHelp) {
  for (const char* c : kCommands) {
    const Result r = run(std::string(c) + " --help");
    EXPECT_EQ(r.code, 0) << c;
    EXPECT_THAT(r.out, ::testing::HasSubstr(std::string("usage: gradzip ") + c)) << c;
    EXPECT_THAT(r.out, ::testing::HasSubstr("--print-config")) << c;
  }
}

TEST_F(GradzipBinary, UsageErrorsExitTwoWithOneLine) {
  const char* const bad[] = {"",
                             "frobnicate",
                             "train --bogus-option",
                             "train --lr abc",
                             "train --workers 0",
                             "train --mode sometimes",
                             "train --heartbeat-interval 40 --worker-timeout 60",
                             "train --config /nonexistent/gradzip.ini",
                             "ps --shard-rank 3 --shards 2",
                             "worker --batch-size",
                             "compressors --verbose",
                             "version extra"};
  for (const char* args : bad) {
    const Result r = run(args);
    EXPECT_EQ(r.code, 2) << args;
    EXPECT_EQ(lines(r.err), 1) << args << ": " << r.err;
    EXPECT_THAT(r.err, ::testing::StartsWith("gradzip")) << args;
    EXPECT_TRUE(r.out.empty()) << args;
  }
}

TEST_F(GradzipBinary, ConfigFileWithOverrideAndPrintConfig) {
  const std::string ini = write("train.ini",
                                "[common]\nseed = 7\n"
                                "[train]\nlr = 0.2\nepochs = 7\ncompressor = ef+identity\n"
                                "[ps]\nbind = tcp://*:6000\n");
  const Result r = run("train --config '" + ini + "' --lr 0.5 --print-config");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::HasSubstr("\nlr = 0.5\n"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("\nepochs = 7\n"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("\nseed = 7\n"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("\ncompressor = ef+identity\n"));
  // train has a --bind option too (its shard role), but the [ps] section's value must not leak into it.
  EXPECT_THAT(r.out, ::testing::Not(::testing::HasSubstr("tcp://*:6000")));
  // The same file configures `ps` from its own section.
  const Result ps = run("ps --config '" + ini + "' --print-config");
  ASSERT_EQ(ps.code, 0) << ps.err;
  EXPECT_THAT(ps.out, ::testing::HasSubstr("\nbind = tcp://*:6000\n"));
  EXPECT_THAT(ps.out, ::testing::HasSubstr("\nseed = 7\n"));
}

TEST_F(GradzipBinary, PrintConfigRoundTripsForEveryCommand) {
  for (const char* c : kCommands) {
    const Result first = run(std::string(c) + " --print-config");
    ASSERT_EQ(first.code, 0) << c << ": " << first.err;
    EXPECT_THAT(first.out, ::testing::HasSubstr(std::string("[") + c + "]\n"));
    const std::string file = write(std::string(c) + ".ini", first.out);
    const Result second = run(std::string(c) + " --config '" + file + "' --print-config");
    ASSERT_EQ(second.code, 0) << c << ": " << second.err;
    EXPECT_EQ(second.out, first.out) << c;
  }
}

// train, ps and worker bind the training options with one function: a [common] section
// configures all three, and every key the worker shows (except where the shards are and
// its rank) is a train key with the same value.
TEST_F(GradzipBinary, OneConfigFileServesTrainPsAndWorker) {
  const std::string ini = write("run.ini",
                                "[common]\nwidth = 8\nlr = 0.05\ntrain-subset = 512\ncompressor = fp16\n"
                                "placement = round-robin\nepochs = 3\nseed = 3\n");
  auto parse = [](const std::string& text) {
    std::map<std::string, std::string> kv;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      const auto eq = line.find(" = ");
      if (eq != std::string::npos && line[0] != '#') kv[line.substr(0, eq)] = line.substr(eq + 3);
    }
    return kv;
  };
  std::map<std::string, std::map<std::string, std::string>> configs;
  for (const char* c : {"train", "ps", "worker"}) {
    const Result r = run(std::string(c) + " --config '" + ini + "' --print-config");
    ASSERT_EQ(r.code, 0) << c << ": " << r.err;
    configs[c] = parse(r.out);
    EXPECT_EQ(configs[c]["width"], "8") << c;
    EXPECT_EQ(configs[c]["placement"], "round-robin") << c;
  }
  for (const auto& [key, value] : configs["worker"]) {
    if (key == "connect" || key == "cluster-file" || key == "worker-rank") continue;
    ASSERT_TRUE(configs["train"].count(key)) << "worker option --" << key << " is not a train option";
    EXPECT_EQ(configs["train"][key], value) << key;
  }
}

TEST_F(GradzipBinary, UnimplementedPlacementIsRefused) {
  for (const char* c : {"train", "ps", "worker"}) {
    const Result r = run(std::string(c) + " --placement hash --print-config");
    EXPECT_EQ(r.code, 2) << c;
    EXPECT_THAT(r.err, ::testing::HasSubstr("balanced")) << c << ": " << r.err;
  }
}

TEST_F(GradzipBinary, CompressorsListsTheRegistry) {
  const Result r = run("compressors");
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, ::testing::HasSubstr("identity"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("Memories"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("ef"));
  // The variance factor of the unbiased codecs and the scale of the ef memory (safe EF).
  EXPECT_THAT(r.out, ::testing::HasSubstr("omega (unbiased; E||C(x)-x||^2 <= omega ||x||^2): min(bucket/s^2"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("scale (default auto; number 1e-06..1 or auto)"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("zipml [15]"));
}

TEST_F(GradzipBinary, CompressorsListsAggregationOnlyCompressorsWithByteFormulas) {
  const Result r = run("compressors");
  EXPECT_EQ(r.code, 0);
  const auto at = r.out.find("Aggregation-only");
  ASSERT_NE(at, std::string::npos) << r.out;
  for (const char* entry : {"  powersgd  ", "  thc  ", "rank (default 4", "levels (default 127", "bytes: 4 rank"}) {
    EXPECT_NE(r.out.find(entry, at), std::string::npos) << entry;
  }
}

TEST_F(GradzipBinary, VersionNamesBuildFacts) {
  const Result r = run("version");
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, ::testing::StartsWith(std::string("gradzip ") + GRADZIP_PROJECT_VERSION + "\n"));
  for (const char* key : {"git revision:", "compiler:", "CUDA:", "NCCL:", "torch:", "GPUs:"}) {
    EXPECT_THAT(r.out, ::testing::HasSubstr(key));
  }
  EXPECT_EQ(run("--version").out, r.out);
}

}  // namespace
