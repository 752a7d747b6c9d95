// `gradzip report`: turns run directories into a comparison table and figures
// (accuracy against bytes sent, step-time breakdown).
#pragma once

#include <string>

#include "experiments/options.h"

namespace gradzip::cli {

struct ReportOptions {
  std::string runs = "";          ///< comma-separated run directories (required)
  std::string out = "report";     ///< output directory for the table and figures
  std::string format = "png";     ///< png | svg
  std::string x_axis = "bytes";   ///< bytes | steps | seconds
};

void bind_report_options(OptionTable* table, ReportOptions* opt);

}  // namespace gradzip::cli
