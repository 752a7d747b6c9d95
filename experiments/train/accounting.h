// Epoch and summary accounting of a training run, the same for every path (sim, local
// processes, netem, cluster ranks): RunRecorder turns one row of cumulative counters per
// epoch into a metrics.csv row (written and flushed as the epoch ends), an "epoch"
// event, a progress line, and the modeled communication time on the run's link; it
// writes summary.json at the start, on failure and at the end.
//
// Multi-process runs: each worker process appends one JSON line per epoch to
// <run>/procs/worker<R>.jsonl, then one final line; WorkerEpochLog reads those files as
// they grow and merges an epoch once every worker reported it. Line format:
//   {"epoch": E (1-based), "step": S (cumulative), "seconds": T, "train_loss", "train_accuracy",
//    ["test_loss", "test_accuracy": worker 0 only],
//    "up": {"messages", "payload_bytes", "framing_bytes", "tcpip_bytes", "seconds"}, "down": {...},
//    "staleness": {"pushes", "sum", "max"}, "h2d_bytes", "d2h_bytes"}
//   {"final": true, "steps", "parameters", "stages": {...}, "bottleneck", "device_fraction", "up", "down"}
// Byte counters are cumulative and are this worker's own (comm::TrafficCounters).
//
// No torch, no Boost. Not thread-safe: feed a recorder from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/link_model.h"
#include "experiments/runlog/rundir.h"

namespace gradzip::experiments {

/// The metrics.csv columns of a training run (names, units, descriptions).
std::vector<runlog::MetricColumn> train_metric_columns();

/// One epoch of a run, all workers together.
struct EpochRow {
  std::int64_t epoch = 0;  ///< 1-based
  std::uint64_t step = 0;  ///< synchronous steps done so far
  double seconds = 0;      ///< wall time since the run started
  double train_loss = 0, train_accuracy = 0;  ///< worker 0's, over the epoch
  double test_loss = 0, test_accuracy = 0;    ///< worker 0's model on the test set
  WireBytes up, down;      ///< cumulative, summed over workers
  /// Staleness of the applied pushes (async/ssp; comm::StalenessCounters), cumulative,
  /// summed over workers (max: the largest).
  double stale_pushes = 0, staleness_sum = 0, staleness_max = 0;
  double h2d_bytes = 0, d2h_bytes = 0;  ///< PCIe copies, cumulative, summed over workers (0 on CPU)
};

/// The fixed facts of a run the accounting needs.
struct RunShape {
  LinkProfile link;                      ///< --link: modeled_comm_s
  std::vector<LinkProfile> report_links; ///< summary.json "modeled_step_comm_s"
  std::uint32_t workers = 1;
  std::uint32_t shards = 1;
  std::vector<double> shard_fraction;    ///< each shard's share of the parameters
  int epochs = 1;                        ///< for the progress line "epoch e/E"
};

/// Accumulates the epochs of one run into its run directory (see the file comment).
class RunRecorder {
 public:
  /// `run` must outlive the recorder. `facts` are the summary's fixed fields (compressor,
  /// workers, shards, cluster, model, dataset, link, parameters, train_images, ...).
  RunRecorder(runlog::RunDir* run, RunShape shape, nlohmann::json facts);

  /// Writes summary.json with status "running" and a "start" event {cluster, compressor,
  /// workers} (from the facts), and logs `start_line`.
  void begin(const std::string& start_line);
  /// Records one epoch: modeled communication time, a flushed metrics.csv row, an
  /// "epoch" event and a progress line "epoch e/E: ...".
  void epoch(const EpochRow& row);
  /// Writes the final summary: status "complete", the facts, `results` (steps, seconds,
  /// final_test_accuracy, bytes, stages, bottleneck, ...), best_test_accuracy,
  /// shard_fraction and modeled_step_comm_s per report link; an "end" event; a done line.
  void complete(const nlohmann::json& results);
  /// Writes summary.json with status "failed" and `error`, and a "failed" event.
  void fail(const std::string& error);
  /// Continues a run that was stopped (experiments/train/resume.h): `kept` are its
  /// metrics rows up to the resume point, `modeled_comm_s` the last one's modeled time.
  /// Later rows count their time and bytes from the last kept row on (a resumed
  /// process's counters start at zero). Logs a "resume" event with `fields`.
  void resume(const std::vector<EpochRow>& kept, double modeled_comm_s, const nlohmann::json& fields);

  /// Extra summary fields (e.g. netem's veth counters); written with the next summary.
  nlohmann::json& summary() { return summary_; }
  std::size_t epochs_recorded() const { return epochs_; }
  const EpochRow& last() const { return last_; }
  double best_test_accuracy() const { return best_acc_; }

 private:
  runlog::RunDir* run_;
  RunShape shape_;
  nlohmann::json summary_;
  std::size_t epochs_ = 0;
  EpochRow last_;
  double best_acc_ = 0;
  double modeled_comm_s_ = 0;
  StepTraffic last_traffic_;
  EpochRow base_;  ///< added to each new row's time and bytes (a resumed run's last kept row)
};

/// The workers' epoch lines of a multi-process run (see the file comment).
class WorkerEpochLog {
 public:
  /// `epochs_before`: epochs the run recorded before these files began (a resumed run).
  WorkerEpochLog(std::filesystem::path procs_dir, std::uint32_t workers, std::size_t epochs_before = 0);
  /// Path of worker `w`'s line file.
  std::filesystem::path file(std::uint32_t w) const;
  /// Reads the complete lines appended since the last call (a line still being written
  /// is left for the next one).
  void poll();
  /// Epochs every worker has reported.
  std::size_t complete_epochs() const;
  /// Epoch line `e` (0-based, < complete_epochs()): its epoch, step, time, loss and
  /// accuracy of worker 0, bytes summed over the workers.
  EpochRow row(std::size_t e) const;
  /// Worker `w`'s final line, or an empty object before it arrived.
  const nlohmann::json& final_line(std::uint32_t w) const;
  /// Workers whose files or final lines are missing, e.g. "worker1, worker2" ("" = none).
  std::string missing_finals() const;
  /// Records every epoch complete in the log but not yet in `recorder`; returns how many.
  std::size_t record_new(RunRecorder* recorder) const;
  /// The final summary fields of a multi-process run from worker 0's lines.
  nlohmann::json results(const RunRecorder& recorder) const;

 private:
  struct Worker {
    std::uintmax_t offset = 0;  ///< bytes of the file consumed
    std::vector<nlohmann::json> epochs;
    nlohmann::json final_line = nlohmann::json::object();
  };
  std::filesystem::path dir_;
  std::vector<Worker> workers_;
  std::size_t epochs_before_ = 0;
};

}  // namespace gradzip::experiments
