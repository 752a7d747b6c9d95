// Dense resync of a worker's replica under a compressed downlink (no torch). The worker
// holds x^, the sum of the decoded deltas the shards sent (comm/shard.h); every
// --downlink-resync steps it also pulls x^ dense, measures how far its copy drifted and
// replaces it, so a lost or corrupted delta cannot stay in the parameters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "comm/layout.h"
#include "comm/transport.h"

namespace gradzip::trainer {

/// replica[0, n) <- dense[0, n); returns max |replica - dense| before the copy.
double replace_replica(const float* dense, float* replica, std::size_t n);

/// Pulls every bucket of step `step` dense into `scratch` (total_numel floats), replaces
/// `params` with it and returns the largest difference found. Throws comm::CommError.
double resync_all(comm::WorkerTransport& transport, const comm::Layout& layout, std::uint64_t step, float* params,
                  std::vector<float>* scratch);

}  // namespace gradzip::trainer
