// Tests of the run-directory writer (experiments/runlog/rundir.h): files and formats, CSV quoting and
// exact number round trip, misuse errors, a resumed run's metrics continued, concurrent
// appends, atomic summary, logging, progress output on a TTY and off it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "experiments/runlog/rundir.h"

namespace gradzip::runlog {
namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

/// Minimal RFC 4180 splitter for checking what the writer produced.
std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> cells(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cells.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cells.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      cells.emplace_back();
    } else {
      cells.back() += c;
    }
  }
  return cells;
}

class RunDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("gradzip_rundir_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::unique_ptr<RunDir> make(const std::string& sub = "run") {
    RunDirOptions o;
    o.log_to_console = false;
    return RunDir::create(root_ / sub, o);
  }

  std::filesystem::path root_;
};

const std::vector<MetricColumn> kColumns = {
    {"step", "count", "global step"},
    {"kind", "", "train or eval"},
    {"loss", "nats", "mean cross-entropy"},
    {"bytes_up", "bytes", "uplink bytes this step"},
};

TEST_F(RunDirTest, CreatesNestedDirectoryAndRefusesToClobber) {
  { auto run = make("a/b/c"); EXPECT_TRUE(std::filesystem::is_directory(root_ / "a/b/c")); }
  EXPECT_THROW(make("a/b/c"), RunDirError);  // not empty: events.jsonl, log.txt exist
  RunDirOptions reuse;
  reuse.log_to_console = false;
  reuse.allow_existing = true;
  EXPECT_NO_THROW(RunDir::create(root_ / "a/b/c", reuse));
  std::ofstream(root_ / "plainfile") << "x";
  EXPECT_THROW(make("plainfile"), RunDirError);
  RunDirOptions bad;
  bad.log_level = "loud";
  EXPECT_THROW(RunDir::create(root_ / "d", bad), RunDirError);
}

TEST_F(RunDirTest, MetricsHeaderOnceAndRowsRoundTrip) {
  auto run = make();
  run->declare_metrics(kColumns);
  const double losses[] = {0.1, 2.0 / 3.0, 1e-300, 12345.678901234567};
  for (int i = 0; i < 4; ++i) {
    run->append_metrics({MetricValue(std::int64_t{i * 37 + 3}), MetricValue(std::string(i % 2 ? "eval" : "train")),
                         MetricValue(losses[i]), MetricValue(std::int64_t{1} << (40 + i))});
  }
  run->append_metrics(std::map<std::string, MetricValue>{{"step", std::int64_t{999}}, {"kind", std::string("a,\"b\"")}});
  const auto lines = lines_of(slurp(run->path() / "metrics.csv"));
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[0], "step,kind,loss,bytes_up");
  for (int i = 0; i < 4; ++i) {
    const auto cells = split_csv(lines[1 + i]);
    ASSERT_EQ(cells.size(), 4u);
    EXPECT_EQ(std::stoll(cells[0]), i * 37 + 3);
    EXPECT_EQ(std::stod(cells[2]), losses[i]) << cells[2];  // exact round trip
    EXPECT_EQ(std::stoll(cells[3]), std::int64_t{1} << (40 + i));
  }
  const auto last = split_csv(lines[5]);
  ASSERT_EQ(last.size(), 4u);
  EXPECT_EQ(last[0], "999");
  EXPECT_EQ(last[1], "a,\"b\"");
  EXPECT_EQ(last[2], "");
  EXPECT_EQ(last[3], "");

  const auto doc = nlohmann::json::parse(slurp(run->path() / "metrics_columns.json"));
  ASSERT_EQ(doc.size(), kColumns.size());
  EXPECT_EQ(doc[3]["name"], "bytes_up");
  EXPECT_EQ(doc[3]["unit"], "bytes");
  EXPECT_EQ(run->metric_columns().size(), kColumns.size());
}

TEST_F(RunDirTest, MetricsMisuseIsATypedError) {
  auto run = make();
  EXPECT_THROW(run->append_metrics({MetricValue(std::int64_t{1})}), RunDirError);
  EXPECT_THROW(run->declare_metrics({}), RunDirError);
  EXPECT_THROW(run->declare_metrics({{"Step", "", ""}}), RunDirError);
  EXPECT_THROW(run->declare_metrics({{"a", "", ""}, {"a", "", ""}}), RunDirError);
  run->declare_metrics(kColumns);
  EXPECT_THROW(run->declare_metrics(kColumns), RunDirError);
  EXPECT_THROW(run->append_metrics({MetricValue(std::int64_t{1})}), RunDirError);
  EXPECT_THROW(run->append_metrics(std::map<std::string, MetricValue>{{"nope", 1.0}}), RunDirError);
  EXPECT_EQ(lines_of(slurp(run->path() / "metrics.csv")).size(), 1u);  // header only
}

TEST_F(RunDirTest, ContinueMetricsKeepsTheFirstRowsAndAppends) {
  {
    auto run = make();
    run->declare_metrics(kColumns);
    for (std::int64_t i = 0; i < 4; ++i) {
      run->append_metrics({MetricValue(i), MetricValue(std::string("train")), MetricValue(0.5), MetricValue(i)});
    }
  }
  RunDirOptions reuse;
  reuse.log_to_console = false;
  reuse.allow_existing = true;
  {
    auto again = RunDir::create(root_ / "run", reuse);
    EXPECT_THROW(again->continue_metrics({{"step", "", ""}}, 2), RunDirError) << "another header";
  }
  {
    auto again = RunDir::create(root_ / "run", reuse);
    EXPECT_THROW(again->continue_metrics(kColumns, 5), RunDirError) << "only 4 rows to keep";
  }
  auto again = RunDir::create(root_ / "run", reuse);
  again->continue_metrics(kColumns, 2);
  again->append_metrics({MetricValue(std::int64_t{9}), MetricValue(std::string("eval")), MetricValue(1.5),
                         MetricValue(std::int64_t{9})});
  const auto lines = lines_of(slurp(root_ / "run" / "metrics.csv"));
  ASSERT_EQ(lines.size(), 4u) << "header, rows 0 and 1 kept, the new row";
  EXPECT_EQ(lines[0], "step,kind,loss,bytes_up");
  EXPECT_EQ(split_csv(lines[2])[0], "1");
  EXPECT_EQ(split_csv(lines[3])[0], "9");
  EXPECT_THROW(again->declare_metrics(kColumns), RunDirError);
}

TEST_F(RunDirTest, FormatMetric) {
  EXPECT_EQ(format_metric(std::int64_t{-42}), "-42");
  EXPECT_EQ(format_metric(0.1), "0.1");
  EXPECT_EQ(format_metric(std::nan("")), "nan");
  EXPECT_EQ(format_metric(-1.0 / 0.0), "-inf");
  EXPECT_EQ(format_metric(std::string("plain")), "plain");
  EXPECT_EQ(format_metric(std::string("say \"hi\"")), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(format_metric(std::string("two\nlines")), "\"two\nlines\"");
}

TEST_F(RunDirTest, ConcurrentAppendsKeepEveryLineWhole) {
  auto run = make();
  run->declare_metrics({{"thread", "", ""}, {"i", "", ""}, {"payload", "", ""}});
  constexpr int kThreads = 4;
  constexpr int kRows = 613;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&run, t] {
      for (int i = 0; i < kRows; ++i) {
        const std::string payload(static_cast<std::size_t>(50 + (i * 7 + t) % 200), static_cast<char>('a' + t));
        run->append_metrics({MetricValue(std::int64_t{t}), MetricValue(std::int64_t{i}), MetricValue(payload)});
        run->event("step", {{"thread", t}, {"i", i}});
      }
    });
  }
  for (auto& th : threads) th.join();

  const auto rows = lines_of(slurp(run->path() / "metrics.csv"));
  ASSERT_EQ(rows.size(), 1u + kThreads * kRows);
  std::set<std::pair<int, int>> seen;
  for (std::size_t r = 1; r < rows.size(); ++r) {
    const auto cells = split_csv(rows[r]);
    ASSERT_EQ(cells.size(), 3u) << rows[r];
    const int t = std::stoi(cells[0]);
    const int i = std::stoi(cells[1]);
    EXPECT_EQ(cells[2], std::string(static_cast<std::size_t>(50 + (i * 7 + t) % 200), static_cast<char>('a' + t)));
    EXPECT_TRUE(seen.insert({t, i}).second);
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kThreads * kRows));

  const auto events = lines_of(slurp(run->path() / "events.jsonl"));
  ASSERT_EQ(events.size(), static_cast<std::size_t>(kThreads * kRows));
  double last_t = -1.0;
  std::set<std::pair<int, int>> seen_events;
  for (const auto& line : events) {
    const auto e = nlohmann::json::parse(line);
    EXPECT_EQ(e["type"], "step");
    EXPECT_GE(e["t_s"].get<double>(), last_t);
    last_t = e["t_s"].get<double>();
    EXPECT_TRUE(seen_events.insert({e["thread"].get<int>(), e["i"].get<int>()}).second);
  }
}

TEST_F(RunDirTest, EventsCarryTimeAndRejectReservedKeys) {
  auto run = make();
  run->event("run_start", {{"workers", 3}, {"spec", "ef+identity"}});
  run->event("note");
  EXPECT_THROW(run->event("x", {{"type", "y"}}), RunDirError);
  EXPECT_THROW(run->event("x", nlohmann::json::array({1, 2})), RunDirError);
  const auto events = lines_of(slurp(run->path() / "events.jsonl"));
  ASSERT_EQ(events.size(), 2u);
  const auto first = nlohmann::json::parse(events[0]);
  EXPECT_EQ(first["workers"], 3);
  EXPECT_EQ(first["spec"], "ef+identity");
  EXPECT_TRUE(std::regex_match(first["time"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
  EXPECT_GE(first["t_s"].get<double>(), 0.0);
}

TEST_F(RunDirTest, ConfigSummaryAndHostFiles) {
  auto run = make();
  const std::string ini = "[train]\nlr = 0.1\nepochs = 3\n";
  run->write_config(ini);
  EXPECT_EQ(slurp(run->path() / "config.ini"), ini);

  run->write_summary({{"accuracy", 0.5}});
  run->write_summary({{"accuracy", 0.875}, {"bytes_up", 123456789}});
  const auto summary = nlohmann::json::parse(slurp(run->path() / "summary.json"));
  EXPECT_EQ(summary["accuracy"], 0.875);
  EXPECT_EQ(summary["bytes_up"], 123456789);
  EXPECT_FALSE(std::filesystem::exists(run->path() / "summary.json.tmp"));

  run->write_host_info("9.9.9-test");
  const auto host = nlohmann::json::parse(slurp(run->path() / "host.json"));
  EXPECT_EQ(host["torch_version"], "9.9.9-test");
  EXPECT_FALSE(host["build"]["git_revision"].get<std::string>().empty());
  EXPECT_FALSE(host["build"]["compiler"].get<std::string>().empty());
  EXPECT_EQ(host["host"]["logical_cores"].get<unsigned>(), std::thread::hardware_concurrency());
  EXPECT_GT(host["host"]["memory_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_TRUE(host["host"]["gpu_names"].is_array());
}

TEST_F(RunDirTest, LoggerWritesDebugToFileWhateverTheConsoleLevel) {
  RunDirOptions o;
  o.log_level = "error";
  o.log_to_console = true;
  ::testing::internal::CaptureStderr();
  {
    auto run = RunDir::create(root_ / "log", o);
    run->logger()->debug("debug detail {}", 17);
    run->logger()->info("hello {}", 42);
    run->logger()->error("bad thing {}", 7);
  }
  const std::string console = ::testing::internal::GetCapturedStderr();
  const std::string file = slurp(root_ / "log" / "log.txt");
  EXPECT_THAT(file, ::testing::HasSubstr("debug detail 17"));
  EXPECT_THAT(file, ::testing::HasSubstr("hello 42"));
  EXPECT_THAT(file, ::testing::HasSubstr("bad thing 7"));
  EXPECT_THAT(console, ::testing::HasSubstr("bad thing 7"));
  EXPECT_THAT(console, ::testing::Not(::testing::HasSubstr("hello 42")));
}

TEST(ProgressBarTest, PlainLinesAtEachTenthWhenNotATty) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressBar bar("epoch 1", 997, f, /*tty=*/0);
    for (std::uint64_t i = 1; i <= 997; ++i) bar.update(i, "loss 0.5");
    bar.finish("done");
    bar.update(5);  // ignored after finish
  }
  std::rewind(f);
  std::string text;
  char buf[256];
  while (std::fgets(buf, sizeof(buf), f)) text += buf;
  std::fclose(f);
  const auto lines = lines_of(text);
  // Deciles 0..10 once each, plus the final line.
  ASSERT_EQ(lines.size(), 12u) << text;
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_THAT(lines.front(), ::testing::StartsWith("epoch 1   0%  1/997"));
  EXPECT_EQ(lines.back(), "epoch 1 100%  997/997  done");
}

TEST(ProgressBarTest, RedrawsInPlaceOnATty) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressBar bar("eval", 53, f, /*tty=*/1);
    for (std::uint64_t i = 1; i <= 31; ++i) bar.update(i);
    bar.finish();
  }
  std::rewind(f);
  std::string text;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), f)) text += buf;
  std::fclose(f);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);  // one line, redrawn with \r
  EXPECT_GE(std::count(text.begin(), text.end(), '\r'), 2);
  EXPECT_THAT(text, ::testing::HasSubstr("31/53"));
  EXPECT_THAT(text, ::testing::EndsWith("\n"));
}

TEST(RunDirName, DefaultNameHasUtcTimestampAndCommand) {
  EXPECT_TRUE(std::regex_match(default_run_dir("train"), std::regex(R"(runs/\d{8}-\d{6}-train)")));
}

}  // namespace
}  // namespace gradzip::runlog
