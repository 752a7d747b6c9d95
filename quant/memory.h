// Error-feedback memories: what a worker keeps between steps so that compression
// error is not lost but re-sent later. Separate from codecs, composable with any codec:
//
//   x        = memory.compensate(grad, state)      // e.g. x = grad + residual
//   message  = codec.encode(x)
//   decoded  = codec.decode(message)               // what the receiver will add
//   state    = memory.update(x, decoded, state)    // e.g. residual = x - decoded
//
// encode_step does all four at once, fused (quant/feedback.h): one pass that encodes and
// updates the state, with no decoded copy of the bucket. It is
// the call to use; compensate/update stay as the reference the tests compare it with.
//
// A Memory object is immutable configuration; all mutable data is in MemoryState,
// one per bucket per worker (owned by the caller). Not thread-safe per state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "quant/codec.h"
#include "quant/status.h"

namespace gradzip::quant {

/// Per-bucket error-feedback state. Vectors are sized lazily by the memory to the
/// bucket's element count on first use (zero-initialised).
struct MemoryState {
  std::vector<float> residual;  ///< e_t: what was not yet transmitted
  std::vector<float> momentum;  ///< u_t: DGC's local momentum (unused by ef/none)
  std::uint64_t steps = 0;      ///< number of update() calls so far
  /// encode_step's second residual buffer (ef, ef21): the fused pass writes the next
  /// residual here and swaps it with `residual` once the whole bucket was encoded, so a
  /// refused bucket leaves `residual` as it was without a read-only pass first
  /// (quant/feedback.h). Contents unspecified; not checkpointed.
  std::vector<float> spare;
};

class Memory {
 public:
  virtual ~Memory() = default;
  /// Canonical spec string, e.g. "dgc:momentum=0.9,clip=0,warmup=0".
  virtual std::string spec() const = 0;
  /// compensated[0, n) = the vector to encode this step. `compensated` may alias `grad`.
  virtual void compensate(const float* grad, float* compensated, std::size_t n, MemoryState* state) const = 0;
  /// Updates state after `compensated` was encoded and the receiver will see `decoded`.
  virtual void update(const float* compensated, const float* decoded, std::size_t n, MemoryState* state) const = 0;
  /// False when update() ignores `decoded` (the caller may skip the decode).
  virtual bool needs_decoded() const { return true; }

  /// One error-feedback step of one bucket, fused (quant/feedback.h): encodes
  /// compensate(grad) with `codec` into out[0, out_capacity), sets *out_bytes to the
  /// message length and moves *state as update() would: the same message bytes and the
  /// same state bits as compensate -> codec.encode -> codec.decode -> update. On any
  /// error (kNonFiniteInput for a NaN/Inf compensated value, kBufferTooSmall, ...) the
  /// state is left as it was, its vectors sized to n as compensate() sizes them.
  /// Thread-safe for distinct states (per-thread scratch); grad must not overlap out.
  virtual Status encode_step(const Codec& codec, const float* grad, std::size_t n, const SeedContext& ctx,
                             MemoryState* state, std::uint8_t* out, std::size_t out_capacity,
                             std::size_t* out_bytes) const;
};

/// Appends the byte image of `state` to *out, for worker checkpoints (comm/checkpoint.h,
/// which versions and checksums the file). Little-endian: u64 steps, u64 r, r fp32
/// residual values, u64 m, m fp32 momentum values.
void serialize_memory_state(const MemoryState& state, std::vector<std::uint8_t>* out);

/// Reads one image written by serialize_memory_state from data[0, size) into *state and
/// sets *consumed to its length in bytes. Truncated input is kTruncated, a vector longer
/// than `max_elements` is kBadLength; on error *state is unchanged. Never reads past size.
Status restore_memory_state(const std::uint8_t* data, std::size_t size, std::size_t max_elements, MemoryState* state,
                            std::size_t* consumed);

}  // namespace gradzip::quant
