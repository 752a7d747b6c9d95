// Reading run directories and turning several of them into one comparison table
// (`gradzip report`): codec, bytes up/down per step, compression ratio, best and final
// test accuracy, steps/s, time to a target accuracy (measured, and modeled per link with
// experiments/link_model.h), bottleneck stage. Markdown and CSV renderings.
//
// What is read from a run directory (written by `gradzip train`):
//   summary.json  object with at least
//       "compressor" (string), "workers", "shards", "parameters" (numbers; shards 0 when
//       "aggregation" names a collective),
//     and, when present, "status" ("complete"), "steps", "seconds",
//       "compute_seconds_per_step" (measured time of one worker step outside push/pull),
//       "step_seconds" (measured time of one training step, evaluations excluded),
//       "shard_fraction" (array, share of parameters per shard), "bottleneck" (string),
//       "stages" (object stage -> seconds), "final_test_accuracy".
//   metrics.csv   one row per evaluation, header line with column names; used columns:
//       step (cumulative steps per worker), seconds (wall time since start),
//       test_accuracy (in [0, 1]; empty = not evaluated),
//       up_payload_bytes, up_framing_bytes, up_tcpip_bytes,
//       down_payload_bytes, down_framing_bytes, down_tcpip_bytes
//         (cumulative, summed over all workers; framing/tcpip columns optional).
//   Other columns are ignored. A missing file or column, or an unparsable number, is a
//   ReportError naming the file, line and column.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "experiments/link_model.h"

namespace gradzip::experiments {

/// A run directory that cannot be read or makes no sense; names file, line and column.
class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One evaluation row of metrics.csv (cumulative counters, all workers summed).
struct MetricRow {
  double step = 0;
  double seconds = 0;
  double test_accuracy = 0;  ///< NaN when not evaluated at this row
  WireBytes up;        ///< cumulative, all workers
  WireBytes down;      ///< cumulative, all workers
};

/// Everything the report needs from one run directory.
struct RunRecord {
  std::string dir;
  std::string name;        ///< last path component of dir
  std::string compressor;  ///< uplink spec; a collective's "aggregation_spec" (e.g. powersgd:rank=4) when it has one
  std::string aggregation = "ps";  ///< summary.json "aggregation": ps, or a collective (allreduce, powersgd, ...)
  std::uint32_t workers = 1;
  std::uint32_t shards = 1;  ///< 0 under a collective aggregation (no parameter-server shards)
  std::uint64_t parameters = 0;
  std::string status;      ///< "complete" or what summary.json says ("" if absent)
  double compute_seconds_per_step = 0;  ///< 0 when unknown: then seconds minus nothing is used
  /// Measured wall time of one training step of worker 0 (summary "step_seconds"; its
  /// training loop only, evaluations excluded); 0 when unknown.
  double step_seconds = 0;
  std::vector<double> shard_fraction;   ///< empty: uniform
  std::string bottleneck;
  std::map<std::string, double> stages;  ///< stage -> seconds
  std::vector<MetricRow> rows;           ///< ascending step
};

/// Reads summary.json and metrics.csv of `dir`. Throws ReportError.
RunRecord load_run(const std::string& dir);

/// Cuts a run into segments between consecutive metric rows (the first starts at step
/// 0 with zero bytes) for experiments/link_model.h. Per segment: steps, compute time =
/// steps * compute_seconds_per_step (or, if unknown, the measured wall time of the
/// segment) plus, when step_seconds is known, an equal share of the run's measured time
/// outside its training steps (evaluations: last seconds - steps * step_seconds, which no
/// link changes), the mean traffic of one step per worker (segment bytes / steps /
/// workers), and the accuracy at its end. A collective run's traffic is modeled as a ring among
/// the workers (collective_ring_rounds).
std::vector<RunSegment> run_segments(const RunRecord& run);

/// Sequential latency-bound rounds of one step of `aggregation` on `workers` ranks
/// (StepTraffic::collective_rounds): ring allreduce (allreduce, homomorphic) 2(R-1),
/// allgather R-1, powersgd two allreduces 4(R-1); at least 1. 0 for "ps".
std::uint32_t collective_ring_rounds(const std::string& aggregation, std::uint32_t workers);

/// Settings of make_report.
struct ReportSettings {
  std::vector<LinkProfile> links;  ///< one modeled time-to-accuracy column each
  /// Target test accuracy in [0, 1]; NaN: automatic = the lowest best accuracy over the
  /// runs (the highest accuracy every run reached), floored to 0.005.
  double target_accuracy = std::numeric_limits<double>::quiet_NaN();
};

/// One row of the comparison table. Bytes are per worker per step (mean over the run);
/// times in seconds; NaN where unknown or never reached.
struct ReportRow {
  std::string run;
  std::string compressor;
  std::uint32_t workers = 0;
  std::uint32_t shards = 0;
  double up_bytes_per_step = 0;    ///< payload + framing + TCP/IP estimate
  double down_bytes_per_step = 0;
  double compression_ratio = 0;    ///< 4 * parameters / uplink payload bytes per step (fp32 = 1)
  double best_accuracy = 0;
  double final_accuracy = 0;
  double steps_per_s = 0;          ///< measured
  double tta_measured_s = 0;       ///< measured wall time to target
  std::vector<double> tta_modeled_s;  ///< per link, same order as ReportTable::links (a collective: ring model)
  std::string bottleneck;
};

struct ReportTable {
  double target_accuracy = 0;
  std::vector<std::string> links;  ///< link names, column order
  std::vector<ReportRow> rows;
};

/// Builds the table. Throws ReportError when `runs` is empty.
ReportTable make_report(const std::vector<RunRecord>& runs, const ReportSettings& settings);

/// GitHub-flavoured markdown: a line naming the target, then the table.
std::string report_markdown(const ReportTable& table);
/// CSV with a header row; numbers in full precision, empty cells for NaN.
std::string report_csv(const ReportTable& table);

/// Per run, link and evaluation: the measured and the modeled wall time (seconds) and
/// the test accuracy, as CSV with header
///   run,compressor,link,step,measured_seconds,modeled_seconds,test_accuracy
/// (what plots/plot_runs.py draws as "accuracy vs modeled wall time per link", so the
/// model has one implementation). Collective runs (aggregation other than ps) are modeled
/// as a ring among the workers (collective_ring_rounds).
std::string report_timelines_csv(const std::vector<RunRecord>& runs, const std::vector<LinkProfile>& links);

}  // namespace gradzip::experiments
