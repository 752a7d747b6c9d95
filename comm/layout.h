// Placement of the model's parameters over M parameter-server shards, and the cut of
// the flat parameter/gradient buffer into buckets (the unit of one push).
//
// Every worker and every shard computes the same Layout from the same ModelSignature
// and PlacementOptions (make_layout is a pure, deterministic function), so no placement
// table ever crosses the wire; the handshake compares PlacementOptions::canonical().
//
// How the trainer cuts its flat buffer (all .grad tensors are views into one fp32
// buffer `flat` of signature.total_numel() elements, tensors in signature order):
//
//   Layout layout = make_layout(signature, options);
//   for (const Bucket& b : layout.buckets) {            // ids 0..n-1, ascending offsets
//     const float* g = flat_grad + b.offset;             // b.numel contiguous elements
//     codec = b.compressed ? uplink_codec : identity;    // tiny buckets go as fp32
//     msg   = codec.encode(g, b.numel, {seed, step, worker, b.id});
//     transport.push(step, b.id, msg);                   // routed to shard b.shard
//   }
//   transport.pull(step, flat_params);                   // fills all of [0, total_numel)
//
// Buckets tile [0, total_numel) exactly: no gap, no overlap, in flat order. A bucket
// never spans two shards; it may span several whole tensors (round-robin and greedy
// place whole tensors and merge flat-adjacent tensors of the same shard) or part of one
// tensor (partitioned strategy, or a run longer than bucket_bytes). With
// first_bucket_bytes, the run that ends the flat buffer ends with a bucket of that size.
//
// One bucket, one compressor: when the signature's compressor is a rule list
// (quant/rules.h, `--compressor-rules`), each tensor gets the spec of its first matching
// rule, and only flat-adjacent tensors of the same shard AND the same spec merge;
// Bucket::spec indexes Layout::specs. A plain spec gives one entry and the same buckets
// (and wire bytes) as before rules existed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "comm/transport.h"

namespace gradzip::comm {

enum class PlacementStrategy {
  kRoundRobin,   ///< tensor i -> shard i mod M (TF's replica_device_setter default)
  kGreedyBytes,  ///< largest tensor first, each to the least-loaded shard (by bytes)
  kPartitioned,  ///< tensors cut into pieces of partition_bytes, pieces placed greedily
};

/// "round_robin" | "greedy" | "partitioned".
const char* placement_strategy_name(PlacementStrategy s);
/// Parses the names above; throws std::invalid_argument naming the allowed values.
PlacementStrategy parse_placement_strategy(const std::string& name);

/// Settings of make_layout. Plain value type.
struct PlacementOptions {
  std::uint32_t num_shards = 1;
  PlacementStrategy strategy = PlacementStrategy::kGreedyBytes;
  /// Largest bucket, in bytes of fp32 elements (4 bytes each); >= 4.
  std::uint64_t bucket_bytes = std::uint64_t{4} << 20;
  /// Piece size of the partitioned strategy, in bytes of fp32 elements (0: bucket_bytes).
  std::uint64_t partition_bytes = 0;
  /// Buckets with fewer elements are sent with the identity codec (fp32): compressing
  /// a bias of 10 floats costs more header than it saves (Lin et al. 2018, DGC, sec. 4,
  /// also skip small layers).
  std::uint64_t min_compress_numel = 0;
  /// Size of the bucket that holds the last elements of the flat buffer (the last
  /// layers, whose gradients backward produces first), in bytes of fp32 elements; 0 =
  /// cut like the others. A small first bucket lets the first push start early in
  /// backward (PyTorch DDP's first bucket is 1 MiB for this reason; gradient bucketing:
  /// Li et al. 2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel
  /// Training", VLDB).
  std::uint64_t first_bucket_bytes = 0;

  /// "greedy:shards=2,bucket_bytes=4194304,partition_bytes=0,min_compress_numel=0", plus
  /// ",first_bucket_bytes=N" when that is set; compared in the handshake.
  std::string canonical() const;
};

/// One bucket: a contiguous range of the flat buffer owned by one shard.
struct Bucket {
  std::uint32_t id = 0;        ///< index in Layout::buckets (ascending flat offset)
  std::uint32_t shard = 0;     ///< owning shard, < num_shards
  std::uint64_t offset = 0;    ///< first element in the flat buffer (elements, not bytes)
  std::uint64_t numel = 0;     ///< elements (> 0)
  bool compressed = false;     ///< true: uplink codec; false: identity fp32
  std::uint64_t shard_offset = 0;  ///< first element in the shard's own partition buffer
  std::uint32_t spec = 0;      ///< index into Layout::specs: this bucket's compressor (when compressed)
};

/// The result of make_layout. Immutable after construction; safe to share between threads.
struct Layout {
  PlacementOptions options;
  std::uint64_t total_numel = 0;
  std::vector<Bucket> buckets;                           ///< tile [0, total_numel)
  std::vector<std::vector<std::uint32_t>> shard_buckets;  ///< shard -> its bucket ids, ascending
  std::vector<std::uint64_t> shard_numel;                 ///< elements each shard owns
  /// Canonical compressor specs of the buckets (Bucket::spec): the signature's spec, or
  /// the distinct specs of its rule list.
  std::vector<std::string> specs;

  /// max / mean bytes per shard (1.0 = perfect balance; mean over all M shards).
  double imbalance() const;
  /// Human-readable plan: one line per bucket plus per-shard totals and imbalance.
  std::string describe(const ModelSignature& signature) const;
};

/// Computes the placement. Deterministic: same inputs -> same Layout on every host.
/// Throws std::invalid_argument for num_shards == 0, bucket_bytes < 4, a model with
/// no elements, or a compressor rule list that is malformed or leaves a tensor unmatched.
Layout make_layout(const ModelSignature& signature, const PlacementOptions& options);

}  // namespace gradzip::comm
