// A training worker's checkpoint: its error-feedback memory (one quant::MemoryState per
// bucket: EF residuals, DGC momentum), its model's buffers (BatchNorm running
// statistics) and its transport's state (WorkerTransport::save_state: the compressor
// state of --aggregation homomorphic and powersgd), written next to the shard checkpoints at the same step in the format of
// comm/checkpoint.h and restored when a run resumes. Internal to trainer/ (torch).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "comm/layout.h"
#include "comm/transport.h"
#include "quant/memory.h"
#include "trainer/train.h"

namespace gradzip::trainer {

/// Writes worker `rank`'s state after `step` steps into config.checkpoint_dir (keeping
/// the newest three, like the shards). `signature_hash`: comm::signature_hash of the run.
void save_worker_state(const TrainConfig& config, std::uint64_t signature_hash, std::uint32_t rank,
                       std::uint64_t step, const std::vector<quant::MemoryState>& memory, torch::nn::Module& net,
                       comm::WorkerTransport& transport);

/// Restores worker `rank`'s state of config.resume_step into *memory (one per bucket of
/// `layout`), the buffers of `net` and `transport` (after its connect()). Throws
/// comm::CheckpointError naming the file when it is missing, corrupt or written for
/// another run, also when the transport refuses its state.
void restore_worker_state(const TrainConfig& config, std::uint64_t signature_hash, const comm::Layout& layout,
                          std::uint32_t rank, std::vector<quant::MemoryState>* memory, torch::nn::Module& net,
                          comm::WorkerTransport& transport);

}  // namespace gradzip::trainer
