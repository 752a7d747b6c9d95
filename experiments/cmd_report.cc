// `gradzip report` options; the body is not written yet.
#include "experiments/cmd_report.h"

#include "experiments/commands.h"

namespace gradzip::cli {

void bind_report_options(OptionTable* t, ReportOptions* o) {
  t->group("Report");
  t->add("runs", &o->runs, "comma-separated run directories (required)");
  t->add("out", &o->out, "output directory for the table and figures");
  t->add_choice("format", &o->format, {"png", "svg"}, "figure format");
  t->add_choice("x-axis", &o->x_axis, {"bytes", "steps", "seconds"}, "x axis of the accuracy curves");
}

int cmd_report(int argc, char** argv) {
  ReportOptions opt;
  OptionTable table("report", "Compare run directories: summary table and figures.");
  bind_report_options(&table, &opt);
  return run_command(table, argc, argv, [&opt] {
    if (opt.runs.empty()) throw UsageError("--runs is required (comma-separated run directories)");
    return not_implemented("report");
  });
}

}  // namespace gradzip::cli
