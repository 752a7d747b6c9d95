// --cluster sim: every worker and shard in this process (trainer::run_training over the
// in-process transport, same wire bytes as ZeroMQ; each worker on its own thread);
// framing and TCP/IP bytes are counted by the in-process transport with
// comm/accounting.h's formulas, as the ZeroMQ transport counts them. Under --aggregation
// allreduce|allgather|homomorphic|powersgd the workers are threads of this process, each
// trainer::run_worker over its own comm::CollectiveTransport (Gloo on loopback), and the
// bytes are the collectives' formulas (comm/collective.h).
#include <filesystem>
#include <thread>

#include "comm/accounting.h"
#include "experiments/train/accounting.h"
#include "experiments/train/collective.h"
#include "experiments/train/config.h"
#include "experiments/train/resume.h"
#include "experiments/train/run.h"

namespace gradzip::cli {
namespace {

/// The metrics row of an epoch without its bytes.
experiments::EpochRow learning_row(const trainer::EpochMetrics& m) {
  experiments::EpochRow row;
  row.epoch = m.epoch + 1;
  row.step = m.steps;
  row.seconds = m.seconds;
  row.train_loss = m.train_loss;
  row.train_accuracy = m.train_accuracy;
  row.test_loss = m.test_loss;
  row.test_accuracy = m.test_accuracy;
  return row;
}

/// summary.json of a finished simulated run: stages cover this process's steps; time and
/// bytes the whole run (recorder.last()).
void complete_sim(const trainer::TrainResult& r, const trainer::TrainConfig& cfg, experiments::RunRecorder& recorder,
                  const std::string& framing_source) {
  const double worker_steps = static_cast<double>(r.steps - cfg.resume_step) * cfg.workers;
  const double comm_s = r.stages.send + r.stages.pull_wait;
  const experiments::EpochRow& last = recorder.last();
  const std::uint64_t steps_here = r.steps - cfg.resume_step;
  recorder.complete({{"steps", r.steps},
                     {"seconds", last.seconds},
                     {"parameters", r.parameters},
                     {"final_test_accuracy", r.final_test_accuracy},
                     {"bytes_up", static_cast<std::uint64_t>(last.up.payload_bytes)},
                     {"bytes_down", static_cast<std::uint64_t>(last.down.payload_bytes)},
                     {"compute_seconds_per_step", worker_steps > 0 ? (r.stages.total() - comm_s) / worker_steps : 0.0},
                     {"step_seconds", steps_here > 0 ? r.train_seconds / static_cast<double>(steps_here) : 0.0},
                     {"stages", stages_json(r.stages)},
                     {"bottleneck", r.bottleneck},
                     {"device_fraction", r.device_fraction},
                     {"overlapped", r.overlapped},
                     {"layout", r.layout_description},
                     {"downlink_resyncs", r.resyncs},
                     {"downlink_resync_max_abs_diff", r.resync_max_abs_diff},
                     {"replica_max_abs_diff", r.replica_max_abs_diff},
                     {"framing_bytes_source", framing_source}});
}

/// The ranks as threads, each over its own CollectiveTransport; rank 0 records the epochs
/// with every rank's counters summed. Returns rank 0's result; throws the first rank's
/// failure (in rank order) after every thread ended.
trainer::TrainResult run_collective_threads(const TrainOptions& o, const RunPlan& plan,
                                            const std::function<void(const trainer::EpochMetrics&,
                                                                     const comm::TrafficCounters&)>& on_epoch) {
  const std::uint32_t R = plan.cfg.workers;
  std::vector<std::unique_ptr<comm::CollectiveTransport>> transports;
  for (std::uint32_t r = 0; r < R; ++r) {
    transports.push_back(std::make_unique<comm::CollectiveTransport>(collective_transport_options(o, plan, r)));
  }
  std::vector<trainer::TrainResult> results(R);
  std::vector<std::string> errors(R);
  std::vector<std::thread> threads;
  for (std::uint32_t r = 0; r < R; ++r) {
    threads.emplace_back([&, r] {
      try {
        results[r] = trainer::run_worker(plan.cfg, *transports[r], r, [&](const trainer::EpochMetrics& m) {
          if (r != 0) return;
          comm::TrafficCounters all;
          for (const auto& t : transports) comm::accumulate(&all, t->counters());
          on_epoch(m, all);
        });
        transports[r]->barrier();
      } catch (const std::exception& e) {
        errors[r] = "rank " + std::to_string(r) + ": " + e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors) {
    if (!e.empty()) throw std::runtime_error(e);
  }
  trainer::TrainResult r0 = results[0];
  for (std::uint32_t r = 1; r < R; ++r) {  // stages of every rank, as run_training sums its workers'
    const trainer::StageSeconds& s = results[r].stages;
    r0.stages.data_wait += s.data_wait;
    r0.stages.h2d += s.h2d;
    r0.stages.compute += s.compute;
    r0.stages.d2h += s.d2h;
    r0.stages.encode += s.encode;
    r0.stages.send += s.send;
    r0.stages.pull_wait += s.pull_wait;
    r0.stages.apply += s.apply;
  }
  r0.bottleneck = trainer::dominant_stage(r0.stages);
  r0.device_fraction = r0.stages.total() > 0 ? r0.stages.compute / r0.stages.total() : 0;
  return r0;
}

}  // namespace

namespace {

experiments::WireBytes wire(const comm::DirectionCounters& c) {
  return {static_cast<double>(c.payload_bytes), static_cast<double>(c.framing_bytes),
          static_cast<double>(c.tcpip_bytes)};
}

}  // namespace

int run_sim(const TrainOptions& o, const OptionTable& table, const ResumeState* resume) {
  const experiments::LinkProfile link = experiments::parse_link(o.link);
  RunPlan plan = plan_run(o);
  trainer::TrainConfig& cfg = plan.cfg;
  if (o.sim_link_delay && !cfg.ps_powersgd.empty()) {
    throw UsageError("--sim-link-delay: --aggregation ps --compressor powersgd's round trips do not go through the "
                     "modeled link");
  }
  if (o.sim_link_delay) cfg.sim_link_bytes_per_s = link.bandwidth_bytes_per_s;
  const auto shards = static_cast<std::uint32_t>(o.topology.shards);

  auto run = resume ? reopen_run_dir(o, table, *resume) : open_run_dir(o, table);
  experiments::RunShape shape{link, experiments::parse_link_list(o.report_links), cfg.workers, shards,
                              plan.shard_fraction, cfg.epochs};
  experiments::RunRecorder recorder(run.get(), shape, summary_facts(o, plan, link.name));
  recorder.begin("train: " + std::to_string(cfg.workers) + " workers x " + std::to_string(shards) + " shards, " +
                 cfg.model + " on " + cfg.dataset + " (" + std::to_string(plan.train_images) +
                 " training images), compressor " + plan.compressor_spec + ", " + comm::sync_mode_name(cfg.mode) +
                 ", run dir " + run->path().string());
  if (resume) continue_recording(*resume, run.get(), &recorder);

  auto on_epoch = [&](const trainer::EpochMetrics& m) {
    experiments::EpochRow row = learning_row(m);
    row.up = wire(m.traffic.up);
    row.down = wire(m.traffic.down);
    row.stale_pushes = static_cast<double>(m.traffic.staleness.pushes);
    row.staleness_sum = static_cast<double>(m.traffic.staleness.sum);
    row.staleness_max = static_cast<double>(m.traffic.staleness.max);
    row.h2d_bytes = static_cast<double>(m.h2d_bytes);
    row.d2h_bytes = static_cast<double>(m.d2h_bytes);
    recorder.epoch(row);
  };
  // Collectives: the counters of every rank's transport, from the engine's byte formulas.
  auto on_collective_epoch = [&](const trainer::EpochMetrics& m, const comm::TrafficCounters& c) {
    experiments::EpochRow row = learning_row(m);
    row.up = {double(c.up.payload_bytes), double(c.up.framing_bytes), double(c.up.tcpip_bytes)};
    row.down = {double(c.down.payload_bytes), double(c.down.framing_bytes), double(c.down.tcpip_bytes)};
    recorder.epoch(row);
  };
  const bool collective = uses_collective(o);
  if (collective) {
    std::error_code ec;
    std::filesystem::remove_all(collective_store_dir(o), ec);  // fresh rendezvous for this start
  }
  trainer::TrainResult r;
  try {
    r = collective ? run_collective_threads(o, plan, on_collective_epoch) : trainer::run_training(cfg, on_epoch);
  } catch (const std::exception& e) {
    recorder.fail(e.what());
    throw;
  }
  complete_sim(r, cfg, recorder,
               collective ? "Gloo collectives' byte formulas (comm/collective.h), every rank summed"
                          : "counted by the in-process transport with comm/accounting.h's formulas");
  return kExitOk;
}

}  // namespace gradzip::cli
