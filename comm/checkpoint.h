// Shard checkpoints: parameters, optimizer state and step of one shard's partition.
//
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
// Written atomically: a temp file in the same directory, fsync, rename(2) (POSIX rename
// replaces the target atomically, so a reader sees the old or the new file, never half).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gradzip::comm {

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
/// signature hash and sizes (n elements) match; corrupt or foreign files are skipped and
/// listed in *skipped (path + reason). Returns false when none is valid.
bool load_newest_checkpoint(const std::string& dir, std::uint32_t shard_id, std::uint32_t num_shards,
                            std::uint64_t signature_hash, std::uint64_t n, ShardCheckpoint* out,
                            std::vector<std::string>* skipped);

}  // namespace gradzip::comm
