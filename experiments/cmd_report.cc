// `gradzip report RUN_DIR...`: comparison table, timelines and figures from run
// directories (experiments/report.h does the reading and the numbers).
#include "experiments/cmd_report.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "experiments/link_model.h"
#include "experiments/commands.h"
#include "experiments/report.h"

#ifndef GRADZIP_PLOTS_DIR
#define GRADZIP_PLOTS_DIR "plots"
#endif

namespace gradzip::cli {
namespace fs = std::filesystem;
namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// A directory given on the command line is a run (has summary.json) or a folder of runs
// (a sweep's output): the latter expands to its sub-directories that hold summary.json.
std::vector<std::string> expand_run_dirs(const std::vector<std::string>& given) {
  std::vector<std::string> dirs;
  for (const auto& g : given) {
    if (!fs::is_directory(g)) throw UsageError("'" + g + "' is not a directory");
    if (fs::exists(fs::path(g) / "summary.json")) {
      dirs.push_back(g);
      continue;
    }
    std::vector<std::string> children;
    for (const auto& e : fs::directory_iterator(g)) {
      if (e.is_directory() && fs::exists(e.path() / "summary.json")) children.push_back(e.path().string());
    }
    if (children.empty()) throw UsageError("'" + g + "' holds no summary.json and no run directories");
    std::sort(children.begin(), children.end());
    dirs.insert(dirs.end(), children.begin(), children.end());
  }
  return dirs;
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

// Runs argv (no shell), inheriting stdout/stderr; returns the exit status.
int run_program(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::cout.flush();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    execvp(args[0], args.data());
    std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run_report(const ReportOptions& opt, const std::vector<std::string>& positional) {
  std::vector<std::string> given = split_commas(opt.runs);
  given.insert(given.end(), positional.begin(), positional.end());
  if (given.empty()) throw UsageError("no run directories: give them as arguments or with --runs a,b,c");
  std::vector<experiments::RunRecord> runs;
  for (const auto& dir : expand_run_dirs(given)) {
    try {
      runs.push_back(experiments::load_run(dir));
    } catch (const experiments::ReportError& e) {
      throw UsageError(e.what());
    }
  }
  experiments::ReportSettings settings;
  try {
    settings.links = experiments::parse_link_list(opt.links);
  } catch (const experiments::LinkModelError& e) {
    throw UsageError(std::string("--links: ") + e.what());
  }
  if (opt.target > 0) settings.target_accuracy = opt.target;
  const experiments::ReportTable table = experiments::make_report(runs, settings);
  const std::string markdown = experiments::report_markdown(table);
  std::cout << markdown;

  std::error_code ec;
  fs::create_directories(opt.out, ec);
  if (ec) throw std::runtime_error("cannot create " + opt.out + ": " + ec.message());
  const fs::path out(opt.out);
  write_file(out / "report.md", markdown);
  write_file(out / "report.csv", experiments::report_csv(table));
  write_file(out / "timelines.csv", experiments::report_timelines_csv(runs, settings.links));
  std::cout << "\nwrote " << (out / "report.md").string() << ", report.csv, timelines.csv" << std::endl;
  if (!opt.plots) return kExitOk;

  const fs::path script = fs::path(opt.plots_dir.empty() ? GRADZIP_PLOTS_DIR : opt.plots_dir) / "plot_runs.py";
  if (!fs::exists(script)) throw std::runtime_error(script.string() + " not found; pass --plots-dir or --plots false");
  std::vector<std::string> argv = {opt.python, script.string(), "--out", out.string(), "--formats", opt.format,
                                   "--timelines", (out / "timelines.csv").string()};
  for (const auto& r : runs) argv.push_back(r.dir);
  const int rc = run_program(argv);
  if (rc != 0) {
    std::cerr << "gradzip report: figures not written: " << script.string() << " exited with status " << rc
              << (rc == 127 ? " (is " + opt.python + " installed? Debian: python3-matplotlib)" : std::string()) << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

// Splits argv into options and positional run directories. Every option of `report`
// takes a value except the flags listed here.
std::vector<std::string> take_positional(int argc, char** argv, std::vector<char*>* rest) {
  static const char* const kFlags[] = {"--help", "--print-config", "--plots"};
  std::vector<std::string> positional;
  rest->push_back(argv[0]);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      rest->push_back(argv[i]);
      bool flag = a.find('=') != std::string::npos;
      for (const char* f : kFlags) flag = flag || a == f;
      if (!flag && i + 1 < argc) rest->push_back(argv[++i]);
    } else {
      positional.push_back(a);
    }
  }
  return positional;
}

}  // namespace

void bind_report_options(OptionTable* t, ReportOptions* o) {
  t->group("Report");
  t->add("runs", &o->runs, "comma-separated run directories (or give them as arguments); a folder of runs expands");
  t->add("out", &o->out, "output directory for report.md, report.csv, timelines.csv and figures");
  t->add_choice("format", &o->format, {"png", "svg", "png,svg"}, "figure formats");
  t->add("links", &o->links, "link profiles for modeled time-to-accuracy: pcie3|pcie4|pcie5|nvlink|eth1g|eth10g|"
                             "eth25g|eth100g|custom:bw=<n>gbit,lat=<n>us, comma-separated, or 'all'");
  t->add("target", &o->target, "target test accuracy for time-to-accuracy; 0 = the highest every run reached",
         Range{0.0, 1.0});
  t->add("plots", &o->plots, "render figures with plots/plot_runs.py");
  t->add("python", &o->python, "python interpreter with matplotlib");
  t->add("plots-dir", &o->plots_dir, "folder holding plot_runs.py; empty = the source tree's plots/");
}

int cmd_report(int argc, char** argv) {
  ReportOptions opt;
  OptionTable table("report", "Compare run directories: comparison table, timelines and figures.");
  bind_report_options(&table, &opt);
  std::vector<char*> rest;
  const std::vector<std::string> positional = take_positional(argc, argv, &rest);
  return run_command(table, static_cast<int>(rest.size()), rest.data(),
                     [&] { return run_report(opt, positional); });
}

}  // namespace gradzip::cli
