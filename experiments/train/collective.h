// `--aggregation allreduce|allgather|homomorphic|powersgd`: the workers aggregate among
// themselves with collectives (comm/collective_transport.h, Gloo over TCP) instead of the
// parameter server; no shard process exists. The options, their checks, and the transport options
// of one rank. Torch-free.
//
// Where each cluster mode runs the ranks:
//   sim    threads of this process (experiments/train/sim_collective.cc), loopback TCP
//   local  worker processes on loopback (experiments/train/local_cluster.cc), no shards
//   netem  one network namespace per worker, on the shaped links
// The ranks rendezvous in a store directory they all reach (--collective-dir; default
// <run dir>/collective/step-<resume step>, fresh for each start: the launchers clear it).
#pragma once

#include <cstdint>
#include <string>

#include "comm/collective_transport.h"
#include "comm/layout.h"
#include "experiments/cli.h"
#include "experiments/train/options.h"

namespace gradzip::cli {

struct RunPlan;

/// Registers --aggregation, --collective-timeout, --collective-dir, --collective-host.
void bind_aggregation_options(OptionTable* table, AggregationOptions* opt);

/// True for every aggregation but "ps".
bool uses_collective(const TrainingOptions& o);

/// The rendezvous store directory of this start of the run (see top of file).
std::string collective_store_dir(const TrainingOptions& o);

/// True for --aggregation ps with --compressor powersgd[:..]: PowerSGD over the parameter
/// server (comm/powersgd_ps_transport.h, comm/shard_reduce.cc).
bool ps_powersgd(const TrainingOptions& o);

/// True for homomorphic and powersgd (and ps_powersgd): the workers push fp32 (identity)
/// and the transport runs the --compressor spec (thc, powersgd) between its reductions.
bool aggregation_only(const TrainingOptions& o);

/// Checks what a collective run cannot do (UsageError): more than one shard, CURVE keys;
/// and what PowerSGD over the parameter server cannot (more than one shard, async/ssp,
/// a compressed downlink, compressor rules).
void check_collective_options(const TrainingOptions& o);

/// --aggregation allreduce: every compressed bucket's codec must be identity, fp16 or bf16
/// (UsageError naming the codec otherwise).
void check_allreduce_specs(const TrainingOptions& o, const comm::Layout& layout);

/// The transport options of worker `rank`: mode, rendezvous, the plan's layout (one
/// shard) and optimizer, checkpoints every --checkpoint-every epochs, restore of
/// --resume-step.
comm::CollectiveTransportOptions collective_transport_options(const TrainingOptions& o, const RunPlan& plan,
                                                              std::uint32_t rank);

}  // namespace gradzip::cli
