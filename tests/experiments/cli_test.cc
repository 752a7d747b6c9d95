// Tests of the CLI option plumbing (experiments/cli.h) on a test-only options struct:
// typed values, range/choice errors, config file + command-line precedence, sections,
// --print-config round trip, help text.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "experiments/cli.h"
#include "experiments/options.h"

namespace gradzip::cli {
namespace {

enum class Color { kRed, kGreen, kBlue };

struct DemoOptions {
  std::string name = "demo";
  bool verbose = false;
  int count = 7;
  std::int64_t offset = -3;
  std::uint64_t big = 5;
  double rate = 0.125;
  std::string shape = "square";
  Color color = Color::kGreen;
  std::string empty_by_default;
};

void bind_demo(OptionTable* t, DemoOptions* o) {
  t->group("Demo");
  t->add("name", &o->name, "a name");
  t->add("verbose", &o->verbose, "talk more");
  t->add("count", &o->count, "how many", Range{1, 1000});
  t->add("offset", &o->offset, "signed offset");
  t->add("big", &o->big, "unsigned 64-bit");
  t->group("Numbers");
  t->add("rate", &o->rate, "a rate", Range{0.0, 1.0});
  t->add_choice("shape", &o->shape, {"square", "circle"}, "a shape");
  t->add_enum("color", &o->color, {{"red", Color::kRed}, {"green", Color::kGreen}, {"blue", Color::kBlue}},
              "a color");
  t->add("empty-by-default", &o->empty_by_default, "starts empty");
}

/// Parses `args` (without the command name) into a fresh DemoOptions.
struct Parsed {
  DemoOptions opt;
  ParseOutcome outcome = ParseOutcome::kRun;
  std::string out;
};

Parsed parse(std::vector<std::string> args) {
  Parsed p;
  OptionTable t("demo", "A demo command.");
  bind_demo(&t, &p.opt);
  args.insert(args.begin(), "demo");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out;
  p.outcome = t.parse(static_cast<int>(argv.size()), argv.data(), out);
  p.out = out.str();
  return p;
}

std::string usage_error(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const UsageError& e) {
    return e.what();
  }
  return "<no error>";
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("gradzip_cli_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    const auto p = path_ / name;
    std::ofstream(p) << text;
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

TEST(Cli, DefaultsAreKeptWithoutArguments) {
  const Parsed p = parse({});
  EXPECT_EQ(p.outcome, ParseOutcome::kRun);
  const DemoOptions d;
  EXPECT_EQ(p.opt.name, d.name);
  EXPECT_EQ(p.opt.count, d.count);
  EXPECT_EQ(p.opt.offset, d.offset);
  EXPECT_EQ(p.opt.rate, d.rate);
  EXPECT_EQ(p.opt.color, Color::kGreen);
  EXPECT_TRUE(p.out.empty());
}

TEST(Cli, CommandLineFillsEveryType) {
  const Parsed p = parse({"--name", "x y", "--verbose", "--count=13", "--offset", "-17", "--big",
                          "18446744073709551615", "--rate", "0.3", "--shape", "circle", "--color", "blue"});
  EXPECT_EQ(p.opt.name, "x y");
  EXPECT_TRUE(p.opt.verbose);
  EXPECT_EQ(p.opt.count, 13);
  EXPECT_EQ(p.opt.offset, -17);
  EXPECT_EQ(p.opt.big, UINT64_MAX);
  EXPECT_DOUBLE_EQ(p.opt.rate, 0.3);
  EXPECT_EQ(p.opt.shape, "circle");
  EXPECT_EQ(p.opt.color, Color::kBlue);
}

TEST(Cli, BoolAcceptsExplicitWords) {
  EXPECT_TRUE(parse({"--verbose=yes"}).opt.verbose);
  EXPECT_FALSE(parse({"--verbose=off"}).opt.verbose);
  EXPECT_FALSE(parse({"--verbose=0"}).opt.verbose);
  EXPECT_THAT(usage_error({"--verbose=maybe"}), ::testing::HasSubstr("--verbose"));
}

TEST(Cli, UnknownOptionIsOneLineNamingIt) {
  const std::string e = usage_error({"--colour", "red"});
  EXPECT_THAT(e, ::testing::HasSubstr("--colour"));
  EXPECT_EQ(e.find('\n'), std::string::npos);
}

TEST(Cli, AbbreviationsAreNotGuessed) {
  // "--verb" must not silently mean --verbose.
  EXPECT_THAT(usage_error({"--verb"}), ::testing::HasSubstr("--verb"));
}

TEST(Cli, PositionalArgumentIsRejected) { EXPECT_NE(usage_error({"stray"}), "<no error>"); }

TEST(Cli, BadValuesNameTheOptionAndWhatIsAllowed) {
  EXPECT_THAT(usage_error({"--count", "12x"}), ::testing::AllOf(::testing::HasSubstr("--count"),
                                                                ::testing::HasSubstr("12x")));
  EXPECT_THAT(usage_error({"--count", "0"}), ::testing::HasSubstr("[1, 1000]"));
  EXPECT_THAT(usage_error({"--count", "99999999999"}), ::testing::HasSubstr("--count"));
  EXPECT_THAT(usage_error({"--big", "-1"}), ::testing::HasSubstr("non-negative"));
  EXPECT_THAT(usage_error({"--rate", "abc"}), ::testing::HasSubstr("real number"));
  EXPECT_THAT(usage_error({"--rate", "nan"}), ::testing::HasSubstr("--rate"));
  EXPECT_THAT(usage_error({"--rate", "1.5"}), ::testing::HasSubstr("[0, 1]"));
  EXPECT_THAT(usage_error({"--shape", "oval"}), ::testing::HasSubstr("square, circle"));
  EXPECT_THAT(usage_error({"--color", "pink"}), ::testing::HasSubstr("red, green, blue"));
  EXPECT_THAT(usage_error({"--count"}), ::testing::HasSubstr("--count"));
  EXPECT_THAT(usage_error({"--count", "1", "--count", "2"}), ::testing::HasSubstr("count"));
}

TEST(Cli, ConfigFileSetsValuesAndCommandLineOverrides) {
  TempDir dir;
  const std::string file = dir.write("a.ini",
                                     "# comment\n"
                                     "count = 21\n"
                                     "rate = 0.75\n"
                                     "; another comment\n"
                                     "[other]\n"
                                     "count = 999\n"
                                     "no-such-key-here = 1\n"
                                     "[common]\n"
                                     "shape = circle\n"
                                     "[demo]\n"
                                     "name = from file\n"
                                     "color = red\n");
  const Parsed p = parse({"--config", file, "--rate", "0.5", "--color", "blue"});
  EXPECT_EQ(p.opt.count, 21);          // file
  EXPECT_DOUBLE_EQ(p.opt.rate, 0.5);   // command line beats file
  EXPECT_EQ(p.opt.shape, "circle");    // [common] applies
  EXPECT_EQ(p.opt.name, "from file");  // [demo] applies
  EXPECT_EQ(p.opt.color, Color::kBlue);
  EXPECT_EQ(p.opt.offset, -3);  // default untouched
}

TEST(Cli, ConfigOptionMayComeAfterOverrides) {
  TempDir dir;
  const std::string file = dir.write("b.ini", "count = 4\nrate = 0.25\n");
  const Parsed p = parse({"--count", "9", "--config", file});
  EXPECT_EQ(p.opt.count, 9);
  EXPECT_DOUBLE_EQ(p.opt.rate, 0.25);
}

TEST(Cli, ConfigFileErrors) {
  TempDir dir;
  EXPECT_THAT(usage_error({"--config", "/nonexistent/gradzip/x.ini"}),
              ::testing::AllOf(::testing::HasSubstr("/nonexistent/gradzip/x.ini"),
                               ::testing::HasSubstr("No such file")));
  EXPECT_THAT(usage_error({"--config", dir.write("u.ini", "bogus-key = 1\n")}),
              ::testing::HasSubstr("bogus-key"));
  EXPECT_THAT(usage_error({"--config", dir.write("v.ini", "count = many\n")}),
              ::testing::AllOf(::testing::HasSubstr("--count"), ::testing::HasSubstr("many")));
  EXPECT_THAT(usage_error({"--config", dir.write("w.ini", "count 5\n")}), ::testing::HasSubstr("line 1"));
  EXPECT_THAT(usage_error({"--config", dir.write("x.ini", "\n[demo\n")}), ::testing::HasSubstr("line 2"));
  EXPECT_THAT(usage_error({"--config", dir.write("y.ini", "count = 1\ncount = 2\n")}),
              ::testing::HasSubstr("count"));
}

TEST(Cli, PrintConfigRoundTripsThroughAFile) {
  TempDir dir;
  const Parsed first = parse({"--name", "  spaced name ", "--verbose", "--count", "977", "--offset", "-123456789012",
                              "--big", "9007199254740993", "--rate", "0.1", "--color", "red", "--print-config"});
  EXPECT_EQ(first.outcome, ParseOutcome::kConfigShown);
  EXPECT_THAT(first.out, ::testing::HasSubstr("[demo]\n"));
  EXPECT_THAT(first.out, ::testing::HasSubstr("count = 977\n"));
  EXPECT_THAT(first.out, ::testing::HasSubstr("empty-by-default =\n"));
  const std::string file = dir.write("printed.ini", first.out);
  const Parsed second = parse({"--config", file, "--print-config"});
  EXPECT_EQ(second.out, first.out);
  const Parsed third = parse({"--config", file});
  EXPECT_EQ(third.opt.name, "spaced name");
  EXPECT_TRUE(third.opt.verbose);
  EXPECT_EQ(third.opt.offset, -123456789012);
  EXPECT_EQ(third.opt.big, 9007199254740993ULL);
  EXPECT_EQ(third.opt.rate, 0.1);  // exact: shortest round-trip formatting
  EXPECT_EQ(third.opt.color, Color::kRed);
  EXPECT_EQ(third.opt.empty_by_default, "");
}

TEST(Cli, RealValuesRoundTripExactly) {
  for (double v : {1e-7, 0.3, 2.0 / 3.0, 123456.789, 0.0}) {
    OptionTable t("demo", "");
    DemoOptions o;
    o.rate = v;
    bind_demo(&t, &o);
    for (const auto& kv : t.values()) {
      if (kv.first == "rate") {
        EXPECT_EQ(std::stod(kv.second), v) << kv.second;
      }
    }
  }
}

TEST(Cli, HelpListsEveryOptionWithDefaultsAndStops) {
  const Parsed p = parse({"--count", "5", "--help"});
  EXPECT_EQ(p.outcome, ParseOutcome::kHelpShown);
  for (const char* name : {"--name", "--verbose", "--count", "--offset", "--big", "--rate", "--shape", "--color",
                           "--config", "--print-config", "--help"}) {
    EXPECT_THAT(p.out, ::testing::HasSubstr(name));
  }
  EXPECT_THAT(p.out, ::testing::HasSubstr("usage: gradzip demo"));
  EXPECT_THAT(p.out, ::testing::HasSubstr("(default: 7)"));
  EXPECT_THAT(p.out, ::testing::HasSubstr("red|green|blue"));
  EXPECT_THAT(p.out, ::testing::HasSubstr("Numbers:"));
}

TEST(Cli, HelpIsShownEvenWithBadValues) {
  EXPECT_EQ(parse({"--count", "zero", "-h"}).outcome, ParseOutcome::kHelpShown);
}

TEST(Cli, ChecksRunAfterAllValuesAreIn) {
  OptionTable t("demo", "");
  DemoOptions o;
  bind_demo(&t, &o);
  t.add_check([&o] {
    if (o.shape == "circle" && o.count < 10) throw UsageError("--shape circle needs --count >= 10");
  });
  const char* ok[] = {"demo", "--shape", "circle", "--count", "10"};
  std::ostringstream out;
  EXPECT_EQ(t.parse(5, ok, out), ParseOutcome::kRun);
  OptionTable t2("demo", "");
  DemoOptions o2;
  bind_demo(&t2, &o2);
  t2.add_check([&o2] {
    if (o2.shape == "circle" && o2.count < 10) throw UsageError("--shape circle needs --count >= 10");
  });
  const char* bad[] = {"demo", "--count", "3", "--shape", "circle"};
  EXPECT_THROW(t2.parse(5, bad, out), UsageError);
}

TEST(Cli, RunCommandMapsErrorsToExitCodes) {
  DemoOptions o;
  OptionTable t("demo", "");
  bind_demo(&t, &o);
  int calls = 0;
  const char* bad[] = {"demo", "--nope"};
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_command(t, 2, bad, [&] { return ++calls; }), kExitUsage);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(calls, 0);
  EXPECT_THAT(err, ::testing::StartsWith("gradzip demo: "));
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1);

  DemoOptions o2;
  OptionTable t2("demo", "");
  bind_demo(&t2, &o2);
  const char* good[] = {"demo", "--count", "4"};
  EXPECT_EQ(run_command(t2, 3, good, [&] { return o2.count * 10; }), 40);

  DemoOptions o3;
  OptionTable t3("demo", "");
  bind_demo(&t3, &o3);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_command(t3, 1, good, [] () -> int { throw std::runtime_error("disk full"); }), kExitFailure);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "gradzip demo: error: disk full\n");

  ::testing::internal::CaptureStderr();
  EXPECT_EQ(not_implemented("demo"), kExitNotImplemented);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "gradzip demo: not implemented yet\n");
}

TEST(Cli, BindingTheSameNameTwiceIsAProgrammingError) {
  OptionTable t("demo", "");
  int a = 0;
  int b = 0;
  t.add("x", &a, "");
  EXPECT_THROW(t.add("x", &b, ""), std::logic_error);
  EXPECT_THROW(t.add("config", &b, ""), std::logic_error);
}

TEST(Cli, SharedGroupsEnforceCrossOptionRules) {
  auto run = [](std::vector<std::string> args) {
    TopologyOptions topo;
    ModelDataOptions data;
    OptimizerOptions optim;
    OptionTable t("x", "");
    bind_topology_options(&t, &topo);
    bind_model_data_options(&t, &data);
    bind_optimizer_options(&t, &optim);
    args.insert(args.begin(), "x");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    std::ostringstream out;
    t.parse(static_cast<int>(argv.size()), argv.data(), out);
    return topo.slack;
  };
  EXPECT_EQ(run({"--mode", "ssp", "--slack", "3"}), 3);
  EXPECT_THROW(run({"--mode", "ssp"}), UsageError);
  EXPECT_THROW(run({"--slack", "2"}), UsageError);
  EXPECT_THROW(run({"--device", "gpu"}), UsageError);
  EXPECT_NO_THROW(run({"--device", "cuda:3"}));
  EXPECT_THROW(run({"--lr-schedule", "step"}), UsageError);
  EXPECT_NO_THROW(run({"--lr-schedule", "step", "--lr-milestones", "30,60"}));
}

TEST(Cli, DeviceNames) {
  EXPECT_TRUE(valid_device("cpu"));
  EXPECT_TRUE(valid_device("cuda"));
  EXPECT_TRUE(valid_device("cuda:0"));
  EXPECT_TRUE(valid_device("auto"));
  EXPECT_FALSE(valid_device("cuda:"));
  EXPECT_FALSE(valid_device("cuda:x"));
  EXPECT_FALSE(valid_device("CPU"));
}

}  // namespace
}  // namespace gradzip::cli
