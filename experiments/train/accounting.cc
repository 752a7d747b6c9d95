// Epoch and summary accounting of training runs (see accounting.h).
#include "experiments/train/accounting.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>


namespace gradzip::experiments {

std::vector<runlog::MetricColumn> train_metric_columns() {
  return {
      {"epoch", "count", "epochs completed (1-based)"},
      {"step", "count", "synchronous steps done so far (each worker pushed once per step)"},
      {"seconds", "s", "wall time since the run started"},
      {"train_loss", "", "worker 0's mean training loss over the epoch"},
      {"train_accuracy", "fraction", "worker 0's training accuracy over the epoch"},
      {"test_loss", "", "test loss of worker 0's model"},
      {"test_accuracy", "fraction", "test accuracy of worker 0's model"},
      {"up_payload_bytes", "bytes", "gradzip messages pushed, all workers, cumulative"},
      {"up_framing_bytes", "bytes", "ZeroMQ envelopes/frame headers pushed, all workers, cumulative"},
      {"up_tcpip_bytes", "bytes", "TCP/IP/Ethernet header estimate uplink, all workers, cumulative"},
      {"down_payload_bytes", "bytes", "parameters pulled, all workers, cumulative"},
      {"down_framing_bytes", "bytes", "ZeroMQ framing downlink, all workers, cumulative"},
      {"down_tcpip_bytes", "bytes", "TCP/IP/Ethernet header estimate downlink, all workers, cumulative"},
      {"modeled_comm_s", "s", "modeled communication time on --link, cumulative (experiments/link_model.h)"},
      {"push_staleness_mean", "updates",
       "async/ssp: mean staleness of this epoch's applied pushes, all workers (updates of the bucket since the "
       "worker last pulled it, as the shard counts them; 0 in sync mode)"},
      {"push_staleness_max", "updates", "async/ssp: largest staleness of any push so far"},
      {"h2d_bytes", "bytes", "host-to-device copies (batches, parameters), all workers, cumulative; 0 on CPU"},
      {"d2h_bytes", "bytes", "device-to-host copies (gradients), all workers, cumulative; 0 on CPU"},
  };
}

// ---- RunRecorder ----------------------------------------------------------------------

namespace {

void add(WireBytes* sum, const WireBytes& w) {
  sum->payload_bytes += w.payload_bytes;
  sum->framing_bytes += w.framing_bytes;
  sum->tcpip_bytes += w.tcpip_bytes;
}

}  // namespace

RunRecorder::RunRecorder(runlog::RunDir* run, RunShape shape, nlohmann::json facts)
    : run_(run), shape_(std::move(shape)), summary_(facts.is_object() ? std::move(facts) : nlohmann::json::object()) {}

void RunRecorder::begin(const std::string& start_line) {
  summary_["status"] = "running";
  run_->write_summary(summary_);
  run_->event("start", {{"cluster", summary_.value("cluster", std::string())},
                        {"compressor", summary_.value("compressor", std::string())},
                        {"workers", summary_.value("workers", 0u)}});
  run_->logger()->info("{}", start_line);
}

void RunRecorder::resume(const std::vector<EpochRow>& kept, double modeled_comm_s, const nlohmann::json& fields) {
  epochs_ = kept.size();
  for (const auto& r : kept) best_acc_ = std::max(best_acc_, r.test_accuracy);
  if (!kept.empty()) last_ = base_ = kept.back();
  modeled_comm_s_ = modeled_comm_s;
  run_->event("resume", fields);
  run_->logger()->info("resuming at step {} after {} recorded epochs", last_.step, epochs_);
}

void RunRecorder::epoch(const EpochRow& segment_row) {
  EpochRow row = segment_row;
  row.seconds += base_.seconds;
  add(&row.up, base_.up);
  add(&row.down, base_.down);
  // Staleness pushes and sums are per segment (metrics.csv keeps only their mean).
  row.staleness_max = std::max(row.staleness_max, base_.staleness_max);
  row.h2d_bytes += base_.h2d_bytes;
  row.d2h_bytes += base_.d2h_bytes;
  // Mean traffic of one worker in one step of this epoch, then T_step on --link for each
  // of the epoch's steps (experiments/link_model.h).
  const double seg_steps = static_cast<double>(row.step - last_.step);
  if (seg_steps > 0) {
    const double per = 1.0 / (seg_steps * shape_.workers);
    StepTraffic t;
    t.num_shards = shape_.shards;
    t.shard_fraction = shape_.shard_fraction;
    t.up.assign(shape_.workers, {(row.up.payload_bytes - last_.up.payload_bytes) * per,
                                 (row.up.framing_bytes - last_.up.framing_bytes) * per,
                                 (row.up.tcpip_bytes - last_.up.tcpip_bytes) * per});
    t.down.assign(shape_.workers, {(row.down.payload_bytes - last_.down.payload_bytes) * per,
                                   (row.down.framing_bytes - last_.down.framing_bytes) * per,
                                   (row.down.tcpip_bytes - last_.down.tcpip_bytes) * per});
    modeled_comm_s_ += seg_steps * modeled_step_time(shape_.link, t).total_s;
    last_traffic_ = t;
  }
  const double pushes = row.stale_pushes - last_.stale_pushes;
  const double staleness_mean = pushes > 0 ? (row.staleness_sum - last_.staleness_sum) / pushes : 0.0;
  last_ = row;
  ++epochs_;
  best_acc_ = std::max(best_acc_, row.test_accuracy);
  run_->append_metrics(std::vector<runlog::MetricValue>{
      row.epoch, static_cast<std::int64_t>(row.step), row.seconds, row.train_loss, row.train_accuracy, row.test_loss,
      row.test_accuracy, row.up.payload_bytes, row.up.framing_bytes, row.up.tcpip_bytes, row.down.payload_bytes,
      row.down.framing_bytes, row.down.tcpip_bytes, modeled_comm_s_, staleness_mean, row.staleness_max,
      row.h2d_bytes, row.d2h_bytes});
  run_->event("epoch", {{"epoch", row.epoch}, {"step", row.step}, {"test_accuracy", row.test_accuracy}});
  run_->logger()->info("epoch {}/{}: step {}, train loss {:.4f}, test accuracy {:.2f}%, {:.1f} s, {:.2f} MB pushed",
                       row.epoch, shape_.epochs, row.step, row.train_loss, 100 * row.test_accuracy, row.seconds,
                       row.up.payload_bytes / 1e6);
}

void RunRecorder::complete(const nlohmann::json& results) {
  summary_["status"] = "complete";
  summary_.update(results);
  summary_["best_test_accuracy"] = best_acc_;
  summary_["shard_fraction"] = shape_.shard_fraction;
  nlohmann::json modeled = nlohmann::json::object();
  if (!last_traffic_.up.empty()) {
    for (const auto& l : shape_.report_links) modeled[l.name] = modeled_step_time(l, last_traffic_).total_s;
  }
  summary_["modeled_step_comm_s"] = modeled;
  run_->write_summary(summary_);
  const double final_acc = summary_.value("final_test_accuracy", 0.0);
  run_->event("end", {{"steps", summary_["steps"]}, {"final_test_accuracy", final_acc}});
  run_->logger()->info("done: {} steps, final test accuracy {:.2f}% (best {:.2f}%), bottleneck {}; {}",
                       summary_.value("steps", std::uint64_t{0}), 100 * final_acc, 100 * best_acc_,
                       summary_.value("bottleneck", std::string("n/a")), run_->path().string());
}

void RunRecorder::fail(const std::string& error) {
  summary_["status"] = "failed";
  summary_["error"] = error;
  run_->write_summary(summary_);
  run_->event("failed", {{"error", error}});
}

// ---- WorkerEpochLog -------------------------------------------------------------------

namespace {

double counter(const nlohmann::json& j, const char* dir, const char* key) {
  return j.contains(dir) && j[dir].contains(key) ? j[dir][key].get<double>() : 0.0;
}

WireBytes direction(const nlohmann::json& j, const char* dir) {
  return {counter(j, dir, "payload_bytes"), counter(j, dir, "framing_bytes"), counter(j, dir, "tcpip_bytes")};
}

}  // namespace

WorkerEpochLog::WorkerEpochLog(std::filesystem::path procs_dir, std::uint32_t workers, std::size_t epochs_before)
    : dir_(std::move(procs_dir)), workers_(workers), epochs_before_(epochs_before) {}

std::filesystem::path WorkerEpochLog::file(std::uint32_t w) const {
  return dir_ / ("worker" + std::to_string(w) + ".jsonl");
}

void WorkerEpochLog::poll() {
  for (std::uint32_t w = 0; w < workers_.size(); ++w) {
    Worker& wk = workers_[w];
    std::ifstream f(file(w), std::ios::binary);
    if (!f) continue;
    f.seekg(static_cast<std::streamoff>(wk.offset));
    std::stringstream rest;
    rest << f.rdbuf();
    const std::string text = rest.str();
    const auto end = text.rfind('\n');
    if (end == std::string::npos) continue;
    wk.offset += end + 1;
    std::stringstream lines(text.substr(0, end + 1));
    std::string line;
    while (std::getline(lines, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_object()) continue;
      if (j.contains("final")) {
        wk.final_line = std::move(j);
      } else {
        wk.epochs.push_back(std::move(j));
      }
    }
  }
}

std::size_t WorkerEpochLog::complete_epochs() const {
  if (workers_.empty()) return 0;
  std::size_t n = std::numeric_limits<std::size_t>::max();
  for (const auto& w : workers_) n = std::min(n, w.epochs.size());
  return n;
}

EpochRow WorkerEpochLog::row(std::size_t e) const {
  const nlohmann::json& j0 = workers_[0].epochs[e];
  EpochRow r;
  r.epoch = j0.value("epoch", static_cast<std::int64_t>(epochs_before_ + e + 1));
  r.step = j0["step"].get<std::uint64_t>();
  r.seconds = j0["seconds"].get<double>();
  r.train_loss = j0.value("train_loss", 0.0);
  r.train_accuracy = j0.value("train_accuracy", 0.0);
  r.test_loss = j0.value("test_loss", 0.0);
  r.test_accuracy = j0.value("test_accuracy", 0.0);
  for (const auto& w : workers_) {
    const nlohmann::json& j = w.epochs[e];
    add(&r.up, direction(j, "up"));
    add(&r.down, direction(j, "down"));
    r.stale_pushes += counter(j, "staleness", "pushes");
    r.staleness_sum += counter(j, "staleness", "sum");
    r.staleness_max = std::max(r.staleness_max, counter(j, "staleness", "max"));
    r.h2d_bytes += j.value("h2d_bytes", 0.0);
    r.d2h_bytes += j.value("d2h_bytes", 0.0);
  }
  return r;
}

const nlohmann::json& WorkerEpochLog::final_line(std::uint32_t w) const { return workers_[w].final_line; }

std::string WorkerEpochLog::missing_finals() const {
  std::string names;
  for (std::uint32_t w = 0; w < workers_.size(); ++w) {
    if (workers_[w].final_line.empty()) names += (names.empty() ? "worker" : ", worker") + std::to_string(w);
  }
  return names;
}

std::size_t WorkerEpochLog::record_new(RunRecorder* recorder) const {
  const std::size_t from = recorder->epochs_recorded() - std::min(recorder->epochs_recorded(), epochs_before_);
  const std::size_t to = complete_epochs();
  for (std::size_t e = from; e < to; ++e) recorder->epoch(row(e));
  return to > from ? to - from : 0;
}

nlohmann::json WorkerEpochLog::results(const RunRecorder& recorder) const {
  const EpochRow& last = recorder.last();
  const nlohmann::json& final0 = workers_.empty() ? nlohmann::json::object() : workers_[0].final_line;
  const double steps = static_cast<double>(last.step);
  double compute_per_step = 0;
  if (final0.contains("stages") && steps > 0) {
    double total = 0;
    for (const auto& [k, v] : final0["stages"].items()) total += v.get<double>();
    const double comm_s = final0["stages"].value("send", 0.0) + final0["stages"].value("pull_wait", 0.0);
    compute_per_step = (total - comm_s) / steps;  // one worker's stages: its own steps
  }
  nlohmann::json r = {{"steps", last.step},
                      {"seconds", last.seconds},
                      {"final_test_accuracy", last.test_accuracy},
                      {"bytes_up", last.up.payload_bytes},
                      {"bytes_down", last.down.payload_bytes},
                      {"compute_seconds_per_step", compute_per_step},
                      {"bottleneck", final0.value("bottleneck", std::string("n/a"))},
                      {"framing_bytes_source", "counted by each worker's ZeroMQ transport (comm/accounting.h)"}};
  if (final0.contains("stages")) r["stages"] = final0["stages"];
  if (final0.contains("overlapped")) r["overlapped"] = final0["overlapped"];
  if (final0.contains("train_seconds") && steps > 0) r["step_seconds"] = final0["train_seconds"].get<double>() / steps;
  double resyncs = 0, resync_diff = 0;
  for (const auto& w : workers_) {
    resyncs += w.final_line.value("downlink_resyncs", 0.0);
    resync_diff = std::max(resync_diff, w.final_line.value("downlink_resync_max_abs_diff", 0.0));
  }
  r["downlink_resyncs"] = resyncs;
  r["downlink_resync_max_abs_diff"] = resync_diff;
  return r;
}

}  // namespace gradzip::experiments
