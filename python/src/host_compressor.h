// HostCompressor: a compressor spec ("ef+topk:ratio=0.01") on CPU memory, with the
// error-feedback state of every bucket it has encoded. The Python class
// gradzip.Compressor wraps it; tensors cross the boundary as (address, element count)
// integers taken from torch tensors the Python side has checked (float32, contiguous,
// CPU), so this file includes no torch header.
//
// One encode = what trainer/worker.cc does per bucket: memory.compensate, codec.encode,
// then (when the memory needs it) codec.decode of the own message and memory.update.
// State (residual, momentum, steps) is kept per bucket id in a quant::MemoryState.
// Not thread-safe: one instance serves one caller at a time (the DDP hook runs buckets
// one after another on the autograd thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "quant/memory.h"
#include "quant/registry.h"

namespace gradzip::python {

class HostCompressor {
 public:
  /// Throws quant::SpecError (naming the bad key/value) for a bad spec.
  HostCompressor(const std::string& spec, std::uint64_t seed);

  /// Canonical "memory+codec" spec with every parameter spelled out.
  std::string spec() const { return compressor_.spec(); }
  std::string codec_spec() const { return compressor_.codec->spec(); }
  std::string memory_spec() const { return compressor_.memory->spec(); }
  std::uint64_t seed() const { return seed_; }
  /// Upper bound of one message for n elements, bytes.
  std::size_t max_encoded_bytes(std::size_t n) const { return compressor_.codec->max_encoded_bytes(n); }

  /// Encodes grad[0, n) (host address) with this bucket's error feedback into out
  /// (capacity bytes, >= max_encoded_bytes(n)); returns the message length in bytes.
  /// `in_place`: the compensated vector may overwrite grad (the DDP hook's bucket buffer,
  /// replaced by the average afterwards); the fused path (Memory::encode_step) never does,
  /// so grad is always left untouched.
  /// Throws StatusError(kEncode) on a codec error; a NaN/Inf in grad is refused before
  /// the bucket's state is touched.
  std::size_t encode(std::uintptr_t grad, std::size_t n, std::uint64_t step, std::uint32_t worker,
                     std::uint32_t bucket, std::uintptr_t out, std::size_t capacity, bool in_place);
  /// out[0, n) = decode(msg); acc[0, n) += scale * decode(msg). Throws StatusError(kDecode).
  void decode(std::uintptr_t msg, std::size_t bytes, std::uintptr_t out, std::size_t n) const;
  void decode_add(std::uintptr_t msg, std::size_t bytes, std::uintptr_t acc, std::size_t n, float scale) const;

  /// Error-feedback state, for checkpoints. Buckets that have state, ascending.
  std::vector<std::uint32_t> state_buckets() const;
  /// (residual elements, momentum elements, steps) of a bucket ((0, 0, 0) when absent).
  std::tuple<std::size_t, std::size_t, std::uint64_t> state_sizes(std::uint32_t bucket) const;
  /// Copies the bucket's residual / momentum to host addresses sized by state_sizes.
  void read_state(std::uint32_t bucket, std::uintptr_t residual, std::uintptr_t momentum) const;
  /// Replaces the bucket's state with copies of the given vectors (0 elements = empty).
  void write_state(std::uint32_t bucket, std::uintptr_t residual, std::size_t residual_n, std::uintptr_t momentum,
                   std::size_t momentum_n, std::uint64_t steps);
  void clear_state() { states_.clear(); }

 private:
  quant::Compressor compressor_;
  std::uint64_t seed_;
  std::map<std::uint32_t, quant::MemoryState> states_;
};

}  // namespace gradzip::python
