// --cluster sim: every worker and shard in this process (trainer::run_training over the
// in-process transport, same wire bytes as ZeroMQ; each worker on its own thread);
// framing and TCP/IP bytes are counted by the in-process transport with
// comm/accounting.h's formulas, as the ZeroMQ transport counts them.
#include "experiments/train/accounting.h"
#include "experiments/train/config.h"
#include "experiments/train/resume.h"
#include "experiments/train/run.h"

namespace gradzip::cli {

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
    experiments::EpochRow row;
    row.epoch = m.epoch + 1;
    row.step = m.steps;
    row.seconds = m.seconds;
    row.train_loss = m.train_loss;
    row.train_accuracy = m.train_accuracy;
    row.test_loss = m.test_loss;
    row.test_accuracy = m.test_accuracy;
    row.up = wire(m.traffic.up);
    row.down = wire(m.traffic.down);
    row.stale_pushes = static_cast<double>(m.traffic.staleness.pushes);
    row.staleness_sum = static_cast<double>(m.traffic.staleness.sum);
    row.staleness_max = static_cast<double>(m.traffic.staleness.max);
    row.h2d_bytes = static_cast<double>(m.h2d_bytes);
    row.d2h_bytes = static_cast<double>(m.d2h_bytes);
    recorder.epoch(row);
  };
  trainer::TrainResult r;
  try {
    r = trainer::run_training(cfg, on_epoch);
  } catch (const std::exception& e) {
    recorder.fail(e.what());
    throw;
  }
  // Stages cover this process's steps; time and bytes the whole run (recorder.last()).
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
                     {"framing_bytes_source", "counted by the in-process transport with comm/accounting.h's formulas"}});
  return kExitOk;
}

}  // namespace gradzip::cli
