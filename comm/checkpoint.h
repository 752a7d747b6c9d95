// Checkpoints of a run: each shard's partition (parameters, optimizer state, step) and
// each worker's state (error-feedback memory per bucket, model buffers), written at the
// same steps into one directory; find_resume_point picks the newest step at which every
// file of the run is valid.
//
// Shard checkpoints:
// File layout (little-endian), name "shard-<id>-step-<version, 12 digits>.ckpt":
//   off size field
//    0   4   magic "GZCK"
//    4   4   format version (1)
//    8   4   shard id
//   12   4   number of shards
//   16   8   version (steps applied)
//   24   8   n = elements of the partition
//   32   8   XXH3-64 of the model signature JSON (a checkpoint of another model is skipped)
//   40   4n  parameters (fp32)
//        4n  momentum buffer (fp32)
//        4n  downlink replica (fp32; what workers hold under a compressed downlink)
//   end  8   XXH3-64 (seed 0) of every byte before it
//
// Worker checkpoints, name "worker-<rank>-step-<step, 12 digits>.ckpt":
//   off size field
//    0   4   magic "GZWK"
//    4   4   format version (2; version 1 files, without field T, still load)
//    8   4   worker rank
//   12   4   number of workers
//   16   8   step (steps applied: the version of the shard checkpoints of the same step)
//   24   8   XXH3-64 of the model signature JSON (as in the shard checkpoints)
//   32   4   B = number of buckets
//   36   8   S = bytes of model state
//   44   8   T = bytes of transport state (absent in version 1: T = 0, body at 44)
//   52       B memory states, bucket order (quant::serialize_memory_state: residual,
//            momentum, steps), then S bytes of model state (opaque to comm; the trainer
//            stores its BatchNorm running statistics there), then T bytes of transport
//            state (WorkerTransport::save_state: the collectives' THC and PowerSGD state)
//   end  8   XXH3-64 (seed 0) of every byte before it
//
// Both are written atomically: a temp file in the same directory, fsync, rename(2) (POSIX
// rename replaces the target atomically, so a reader sees the old or the new file, never half).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant/memory.h"

namespace gradzip::comm {

struct ModelSignature;

/// A checkpoint that is missing, corrupt or belongs to another run; what() names the
/// file and the problem.
class CheckpointError : public std::runtime_error {
 public:
  enum class Kind {
    kMissing,   ///< no such file (or no checkpoint at all)
    kCorrupt,   ///< checksum, magic, version or lengths wrong
    kMismatch,  ///< valid, but written for another model, layout or worker count
  };
  CheckpointError(Kind kind, const std::string& path, const std::string& problem)
      : std::runtime_error(path + ": " + problem), kind_(kind), path_(path) {}
  Kind kind() const noexcept { return kind_; }
  const std::string& path() const noexcept { return path_; }

 private:
  Kind kind_;
  std::string path_;
};

/// XXH3-64 of the signature's JSON: what checkpoints record to refuse another model's.
std::uint64_t signature_hash(const ModelSignature& signature);

struct ShardCheckpoint {
  std::uint32_t shard_id = 0;
  std::uint32_t num_shards = 0;
  std::uint64_t version = 0;
  std::uint64_t signature_hash = 0;
  std::vector<float> params;
  std::vector<float> momentum;
  std::vector<float> replica;
};

/// Writes `ckpt` into `dir` (created if missing) and removes older checkpoints of the
/// same shard beyond the newest `keep`. Returns the path; throws std::runtime_error on
/// I/O failure (a full disk must not pass silently).
std::string write_checkpoint(const std::string& dir, const ShardCheckpoint& ckpt, unsigned keep = 3);

/// Loads the newest checkpoint of `shard_id` in `dir` whose checksum, shard count,
/// signature hash and sizes (n elements) match and whose step is at most `max_version`;
/// corrupt or foreign files are skipped and listed in *skipped (path + reason). Returns
/// false when none is valid.
bool load_newest_checkpoint(const std::string& dir, std::uint32_t shard_id, std::uint32_t num_shards,
                            std::uint64_t signature_hash, std::uint64_t n, ShardCheckpoint* out,
                            std::vector<std::string>* skipped, std::uint64_t max_version = UINT64_MAX);

/// One worker's state at a step.
struct WorkerCheckpoint {
  std::uint32_t worker = 0;
  std::uint32_t num_workers = 0;
  std::uint64_t step = 0;
  std::uint64_t signature_hash = 0;
  std::vector<quant::MemoryState> memory;  ///< per bucket, bucket-id order
  std::vector<std::uint8_t> model_state;   ///< opaque to comm
  std::vector<std::uint8_t> transport_state;  ///< WorkerTransport::save_state (comm/transport.h)
};

/// Path of worker `worker`'s checkpoint of `step` in `dir`.
std::string worker_checkpoint_path(const std::string& dir, std::uint32_t worker, std::uint64_t step);

/// Writes `ckpt` into `dir` (created if missing) and removes this worker's checkpoints
/// beyond the newest `keep`. Returns the path; throws std::runtime_error on I/O failure.
std::string write_worker_checkpoint(const std::string& dir, const WorkerCheckpoint& ckpt, unsigned keep = 3);

/// Loads worker `worker`'s checkpoint of exactly `step` and checks it against the run:
/// worker count, signature hash, one memory state per bucket no longer than the bucket
/// (`bucket_numel`). Throws CheckpointError naming the file: kMissing, kCorrupt, kMismatch.
WorkerCheckpoint load_worker_checkpoint(const std::string& dir, std::uint32_t worker, std::uint32_t num_workers,
                                        std::uint64_t step, std::uint64_t signature_hash,
                                        const std::vector<std::uint64_t>& bucket_numel);

/// Where a run restarts: the newest step with a valid checkpoint of every shard and
/// every worker.
struct ResumePoint {
  std::uint64_t step = 0;
  /// Files of newer steps that were passed over, each "path: problem" (e.g. a worker
  /// checkpoint missing because the run died between the shards' and the workers' writes).
  std::vector<std::string> skipped;
};

/// The run's shapes that checkpoints must match.
struct CheckpointShape {
  std::uint32_t num_workers = 0;
  std::uint64_t signature_hash = 0;
  std::vector<std::uint64_t> shard_numel;   ///< elements per shard (num_shards = size)
  std::vector<std::uint64_t> bucket_numel;  ///< elements per bucket
};

/// Finds the resume point in `dir`, at most `max_step`. Throws CheckpointError: kMissing
/// when `dir` holds no shard checkpoint of a step <= max_step, otherwise (no step is
/// complete) the problem of the newest one, with its kind and path when it is a worker's.
ResumePoint find_resume_point(const std::string& dir, const CheckpointShape& shape,
                              std::uint64_t max_step = UINT64_MAX);

}  // namespace gradzip::comm
