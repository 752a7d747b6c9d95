// `gradzip report`: turns run directories into a comparison table (markdown on stdout,
// report.md, report.csv), per-link modeled timelines (timelines.csv) and figures
// (plots/plot_runs.py: accuracy vs bytes sent, accuracy vs modeled time per link, bytes
// per step, step-time breakdown). See experiments/report.h for what is read.
#pragma once

#include <string>

#include "experiments/options.h"

namespace gradzip::cli {

struct ReportOptions {
  std::string runs = "";          ///< comma-separated run directories (positional arguments also count)
  std::string out = "report";     ///< output directory for the table and figures
  std::string format = "png,svg"; ///< figure formats: png | svg | png,svg
  /// Link profiles for modeled time-to-accuracy columns (experiments/link_model.h specs).
  std::string links = "eth1g,eth10g,eth25g,eth100g,pcie3";
  double target = 0;              ///< target test accuracy in (0, 1]; 0 = automatic (reached by every run)
  bool plots = true;              ///< render figures with plots/plot_runs.py
  std::string python = "/usr/bin/python3";  ///< interpreter with matplotlib
  std::string plots_dir = "";     ///< folder of plot_runs.py; empty = the source tree's plots/
};

void bind_report_options(OptionTable* table, ReportOptions* opt);

}  // namespace gradzip::cli
