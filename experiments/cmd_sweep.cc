// `gradzip sweep`: expands a sweep file (experiments/sweep.h) into `gradzip train` runs
// and runs the unfinished ones, a bounded number at a time.
#include <unistd.h>

#include <iostream>

#include "experiments/cli.h"
#include "experiments/commands.h"
#include "experiments/sweep.h"

namespace gradzip::cli {
namespace {

struct SweepOptions {
  std::string file;         ///< sweep file (required)
  int parallel = 0;         ///< overrides the file's `parallel` when > 0
  bool dry_run = false;     ///< print the commands, run nothing
  std::string gradzip = ""; ///< binary started for each run; empty: this executable
};

std::string self_executable() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw std::runtime_error("cannot resolve /proc/self/exe; pass --gradzip PATH");
  return std::string(buf, static_cast<std::size_t>(n));
}

int run_sweep_command(const SweepOptions& opt) {
  if (opt.file.empty()) throw UsageError("--file is required (a sweep file, see experiments/sweep.h)");
  experiments::SweepSpec spec;
  try {
    spec = experiments::parse_sweep_file(opt.file);
  } catch (const experiments::SweepError& e) {
    throw UsageError(e.what());
  }
  if (opt.parallel > 0) spec.parallel = opt.parallel;
  experiments::SweepRunnerOptions runner;
  runner.command = {opt.gradzip.empty() ? self_executable() : opt.gradzip, "train"};
  runner.dry_run = opt.dry_run;
  const auto runs = experiments::expand_sweep(spec);
  std::cout << "sweep " << opt.file << ": " << runs.size() << " runs under " << spec.out_dir << ", " << spec.parallel
            << " at a time" << std::endl;
  const auto result = experiments::run_sweep(spec, runner);
  for (const auto& s : result.skipped) std::cout << "  skipped (finished): " << s << "\n";
  for (const auto& p : result.planned) std::cout << "  would run: " << p << "\n";
  for (const auto& c : result.completed) std::cout << "  completed: " << c << "\n";
  for (const auto& f : result.failed) std::cout << "  FAILED: " << f << "\n";
  std::cout << "sweep: " << result.completed.size() << " completed, " << result.skipped.size() << " skipped, "
            << result.failed.size() << " failed" << std::endl;
  return result.failed.empty() ? kExitOk : kExitFailure;
}

}  // namespace

int cmd_sweep(int argc, char** argv) {
  SweepOptions opt;
  OptionTable table("sweep", "Run every unfinished run of a sweep file (codecs x workers x links x seeds).");
  table.group("Sweep");
  table.add("file", &opt.file, "sweep file: [sweep] base/out/parallel/timeout/names, [axes], [fixed]");
  table.add("parallel", &opt.parallel, "runs at once; 0 = the file's value", Range{0, 64});
  table.add("dry-run", &opt.dry_run, "print the train commands without running them");
  table.add("gradzip", &opt.gradzip, "gradzip binary to start per run; empty = this executable");
  return run_command(table, argc, argv, [&opt] { return run_sweep_command(opt); });
}

}  // namespace gradzip::cli
