// --aggregation options and the collective transport of one rank (see collective.h).
#include "experiments/train/collective.h"

#include <algorithm>
#include <filesystem>

#include "experiments/train/config.h"
#include "quant/aggregation.h"
#include "quant/spec.h"

namespace gradzip::cli {

void bind_aggregation_options(OptionTable* t, AggregationOptions* o) {
  t->group("Aggregation");
  t->add_choice("aggregation", &o->aggregation, {"ps", "allreduce", "allgather", "homomorphic", "powersgd"},
                "ps: parameter-server shards; allreduce: dense allreduce among the workers (the DDP baseline; "
                "the compressor sets the type: identity = fp32, fp16, bf16); allgather: every worker gathers "
                "every worker's encoded buckets (any codec) and sums them in rank order; homomorphic: THC int8 "
                "codes summed by the allreduce (--compressor [ef+]thc:levels=..); powersgd: rank-r PowerSGD with "
                "two allreduces per step (--compressor powersgd:rank=..). ps with --compressor powersgd:rank=.. "
                "runs PowerSGD over the parameter server instead: two round trips to one shard per step "
                "(--shards 1, --mode sync)");
  t->add("collective-timeout", &o->collective_timeout_s,
         "collectives: seconds a collective call (and the start-up rendezvous) may take before every rank "
         "stops with an error naming the rank that failed",
         Range{0.1, 1e6});
  t->add("collective-dir", &o->collective_dir,
         "collectives: rendezvous directory every rank can reach, fresh for each start; empty = "
         "<run dir>/collective/step-<resume step>");
  t->add("collective-host", &o->collective_host,
         "collectives: address this rank listens on for its peers; empty = 127.0.0.1 (--cluster sim, local), the "
         "namespace's (netem), the rank's \"worker\" host in the cluster file, this node's hostname (mpi, slurm)");
}

bool uses_collective(const TrainingOptions& o) { return o.aggregation.aggregation != "ps"; }

std::string collective_store_dir(const TrainingOptions& o) {
  if (!o.aggregation.collective_dir.empty()) return o.aggregation.collective_dir;
  if (o.run.run_dir.empty()) throw UsageError("--aggregation " + o.aggregation.aggregation + " needs --run-dir or --collective-dir");
  return (std::filesystem::path(o.run.run_dir) / "collective" / ("step-" + std::to_string(o.run.resume_step)))
      .string();
}

bool ps_powersgd(const TrainingOptions& o) {
  if (o.aggregation.aggregation != "ps") return false;
  try {
    const std::string codec = quant::parse_compressor_spec(o.compression.compressor).codec;
    return codec.substr(0, codec.find(':')) == "powersgd";
  } catch (const quant::SpecError&) {
    return false;  // reported where the compressor is parsed
  }
}

bool aggregation_only(const TrainingOptions& o) {
  return o.aggregation.aggregation == "homomorphic" || o.aggregation.aggregation == "powersgd" || ps_powersgd(o);
}

namespace {

/// --aggregation ps --compressor powersgd:..: what the two round trips over one shard
/// cannot do (UsageError).
void check_ps_powersgd_options(const TrainingOptions& o) {
  const std::string what = "--aggregation ps --compressor powersgd";
  try {
    const quant::CompressorSpec spec = quant::parse_compressor_spec(o.compression.compressor);
    if (spec.memory != "none") throw UsageError("--compressor powersgd keeps its own error feedback: drop '" + spec.memory + "+'");
    quant::parse_powersgd_spec(spec.codec);
  } catch (const quant::SpecError& e) {
    throw UsageError(std::string("--compressor: ") + e.what());
  }
  if (o.topology.shards != 1) {
    throw UsageError("--shards " + std::to_string(o.topology.shards) + ": " + what +
                     " reduces every tensor's factors on one shard; use --shards 1");
  }
  if (o.topology.mode != comm::SyncMode::kSync) {
    throw UsageError("--mode " + std::string(comm::sync_mode_name(o.topology.mode)) + ": " + what +
                     " is synchronous (every worker takes part in both round trips of a step)");
  }
  if (o.compression.downlink != "dense") {
    throw UsageError("--downlink " + o.compression.downlink + ": " + what + " pulls dense parameters");
  }
  if (!o.compression.compressor_rules.empty()) {
    throw UsageError("--compressor-rules: " + what + " plans every tensor itself (dense below min_numel)");
  }
}

}  // namespace

void check_collective_options(const TrainingOptions& o) {
  if (ps_powersgd(o)) check_ps_powersgd_options(o);
  if (!uses_collective(o)) return;
  if (aggregation_only(o)) {
    const std::string want = o.aggregation.aggregation == "homomorphic" ? "thc" : "powersgd";
    try {
      const quant::CompressorSpec spec = quant::parse_compressor_spec(o.compression.compressor);
      if (spec.codec.substr(0, spec.codec.find(':')) != want) {
        throw UsageError("--aggregation " + o.aggregation.aggregation + " runs --compressor " + want +
                         "[:...] (got '" + o.compression.compressor + "'; see gradzip compressors)");
      }
      if (want == "thc") {
        quant::parse_thc_spec(spec.codec);
      } else {
        if (spec.memory != "none") throw UsageError("--compressor powersgd keeps its own error feedback: drop '" + spec.memory + "+'");
        quant::parse_powersgd_spec(spec.codec);
      }
    } catch (const quant::SpecError& e) {
      throw UsageError(std::string("--compressor: ") + e.what());
    }
  }
  if (o.topology.shards != 1) {
    throw UsageError("--shards " + std::to_string(o.topology.shards) + ": --aggregation " + o.aggregation.aggregation +
                     " runs no parameter-server shards; leave --shards at 1");
  }
  if (o.topology.mode != comm::SyncMode::kSync) {
    throw UsageError("--mode " + std::string(comm::sync_mode_name(o.topology.mode)) + ": --aggregation " +
                     o.aggregation.aggregation + " is synchronous (every rank takes part in every collective)");
  }
  if (o.compression.downlink != "dense") {
    throw UsageError("--downlink " + o.compression.downlink + ": --aggregation " + o.aggregation.aggregation +
                     " leaves every worker the dense parameters; there is no downlink to compress");
  }
  if (!o.curve_keys.empty()) {
    throw UsageError("--curve-keys encrypts the parameter server's ZeroMQ connections; --aggregation " +
                     o.aggregation.aggregation + " runs over Gloo's plain TCP");
  }
}

void check_allreduce_specs(const TrainingOptions& o, const comm::Layout& layout) {
  if (o.aggregation.aggregation != "allreduce") return;
  for (std::size_t i = 0; i < layout.specs.size(); ++i) {
    const std::string codec = quant::parse_compressor_spec(layout.specs[i]).codec;
    const std::string name = codec.substr(0, codec.find(':'));
    const bool used = std::any_of(layout.buckets.begin(), layout.buckets.end(),
                                  [&](const comm::Bucket& b) { return b.compressed && b.spec == i; });
    if (used && name != "identity" && name != "fp16" && name != "bf16") {
      throw UsageError("--aggregation allreduce sums fp32, fp16 or bf16 buckets: the compressor must be identity, fp16 "
                       "or bf16, not '" + codec + "' (--aggregation allgather gathers any codec's messages)");
    }
  }
}

comm::CollectiveTransportOptions collective_transport_options(const TrainingOptions& o, const RunPlan& plan,
                                                              std::uint32_t rank) {
  comm::CollectiveTransportOptions c;
  c.mode = comm::parse_collective_mode(o.aggregation.aggregation);
  c.collective.engine = "gloo";
  c.collective.rank = rank;
  c.collective.size = plan.cfg.workers;
  c.collective.store_dir = collective_store_dir(o);
  c.collective.host = o.aggregation.collective_host.empty() ? "127.0.0.1" : o.aggregation.collective_host;
  c.collective.timeout_s = o.aggregation.collective_timeout_s;
  c.placement = plan.cfg.placement;
  c.optimizer = plan.cfg.optimizer;
  const std::uint64_t spe = steps_per_epoch(plan.train_images, o.topology.workers, o.data.batch_size);
  c.checkpoint_dir = plan.cfg.checkpoint_dir;
  c.checkpoint_every =
      plan.cfg.checkpoint_dir.empty() ? 0 : static_cast<std::uint64_t>(plan.cfg.checkpoint_every) * spe;
  c.restore_step = plan.cfg.resume_step;
  if (aggregation_only(o)) c.aggregation_spec = o.compression.compressor;
  c.seed = o.run.seed;
  return c;
}

}  // namespace gradzip::cli
