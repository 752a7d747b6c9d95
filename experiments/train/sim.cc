// --cluster sim: every worker and shard in this process (trainer::run_training over the
// in-process transport, same wire bytes as ZeroMQ); framing and TCP/IP bytes are
// estimated from the payload with comm/accounting.h's formulas.
#include "experiments/train/accounting.h"
#include "experiments/train/config.h"
#include "experiments/train/resume.h"
#include "experiments/train/run.h"

namespace gradzip::cli {

int run_sim(const TrainOptions& o, const OptionTable& table, const ResumeState* resume) {
  const experiments::LinkProfile link = experiments::parse_link(o.link);
  const RunPlan plan = plan_run(o);
  const trainer::TrainConfig& cfg = plan.cfg;
  // Messages per worker and step for the framing estimate: one push per bucket, one
  // acknowledgement per push, one pull request and one reply per shard.
  const auto buckets = static_cast<double>(plan.layout.buckets.size());
  const auto shards = static_cast<std::uint32_t>(o.topology.shards);

  auto run = resume ? reopen_run_dir(o, table, *resume) : open_run_dir(o, table);
  experiments::RunShape shape{link, experiments::parse_link_list(o.report_links), cfg.workers, shards,
                              plan.shard_fraction, cfg.epochs};
  experiments::RunRecorder recorder(run.get(), shape, summary_facts(o, plan, link.name));
  recorder.begin("train: " + std::to_string(cfg.workers) + " workers x " + std::to_string(shards) + " shards, " +
                 cfg.model + " on " + cfg.dataset + " (" + std::to_string(plan.train_images) +
                 " training images), compressor " + plan.compressor_spec + ", run dir " + run->path().string());
  if (resume) continue_recording(*resume, run.get(), &recorder);

  auto on_epoch = [&](const trainer::EpochMetrics& m) {
    const double worker_steps = static_cast<double>(m.steps - cfg.resume_step) * cfg.workers;  // this process's
    experiments::EpochRow row;
    row.epoch = m.epoch + 1;
    row.step = m.steps;
    row.seconds = m.seconds;
    row.train_loss = m.train_loss;
    row.train_accuracy = m.train_accuracy;
    row.test_loss = m.test_loss;
    row.test_accuracy = m.test_accuracy;
    row.up = experiments::estimate_wire(static_cast<double>(m.bytes_up), worker_steps * buckets, worker_steps * shards);
    row.down =
        experiments::estimate_wire(static_cast<double>(m.bytes_down), worker_steps * shards, worker_steps * buckets);
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
  recorder.complete({{"steps", r.steps},
                     {"seconds", last.seconds},
                     {"parameters", r.parameters},
                     {"final_test_accuracy", r.final_test_accuracy},
                     {"bytes_up", static_cast<std::uint64_t>(last.up.payload_bytes)},
                     {"bytes_down", static_cast<std::uint64_t>(last.down.payload_bytes)},
                     {"compute_seconds_per_step", worker_steps > 0 ? (r.stages.total() - comm_s) / worker_steps : 0.0},
                     {"stages", stages_json(r.stages)},
                     {"bottleneck", r.bottleneck},
                     {"device_fraction", r.device_fraction},
                     {"layout", r.layout_description},
                     {"framing_bytes_source", "estimated from payload (comm/accounting.h formulas)"}});
  return kExitOk;
}

}  // namespace gradzip::cli
