// Fused error feedback on the CPU: compensate + encode + update of one bucket without a
// decoded copy of the bucket. Memory::encode_step (quant/memory.h) runs it; every user of
// the memory API (the trainer's worker, the Python package, the benchmarks) gets it.
//
// The unfused reference is four passes over the bucket and two temporaries:
//   p = compensate(g, state); msg = encode(p); d = decode(msg); state = update(p, d).
// encode_with_feedback produces the same message bytes and the same state bits with:
//   1. memories whose state is the residual vector (ef, ef21: ResidualOps) are double
//      buffered: update() writes the next state into MemoryState::spare and commit()
//      swaps it with the residual after the last tile. So a tile whose compensated values
//      hold a NaN/Inf (or some |p| >= kSafeMaxAbs) stops the pass with the residual as it
//      was, and no read-only pass is needed. On a stop, the whole bucket is classified
//      (AbsClass) as below and refused (kNonFiniteInput) or sent to the scratch path.
//      Other memories (dgc) update in place, so a read-only pass over the compensated
//      values (grad and state; nothing is written) classifies |p| first, and a NaN/Inf
//      refuses the bucket before any state is touched.
//   2. tiled codecs (Codec::tile_alignment > 0: identity, fp16, bf16, int8, qsgd,
//      terngrad, sign, scaled-sign, onebit, natural, zipml with scope=bucket; the bucketed
//      ones for buckets up to 2^16): one pass in tiles of ~2048 elements (or one bucket);
//      per tile p is computed into an L1-resident buffer, classified (double-buffered
//      memories), encoded, its bytes copied into the message, decoded into a second tile
//      buffer, and the next state written from both. Grad and state are read once and the
//      next state written once (with streaming stores on buckets of >= kStreamingNumel
//      elements: it is not read again this step, and bypassing the cache saves the read
//      of every line before its write). ef and ef21 compute and classify p in one loop
//      (compensated_class) and run it and update() from AVX2 copies where the CPU has
//      them (quant/cpu.h with_simd: same fp32 operations, same bits). A one-region payload (identity, fp16, bf16) is
//      checksummed tile by tile while in cache (and on such buckets encoded into a scratch
//      tile and streamed into the message); two-region ones (scales, then codes) are
//      checksummed after the pass. The codec's per-bucket statistics (scales, norms,
//      zipml's levels) are computed inside the tile from p, which holds whole codec buckets.
//      Memory ef over a codec with a tile kernel (Codec::ef_tile, quant/ef_tile.h: at
//      scale 1 identity, fp16, bf16, int8, sign, scaled-sign; at any scale onebit, qsgd,
//      terngrad, natural, quant/codecs/bucketed_ef.h) runs the kernel instead: compensate,
//      classify, encode, decode and the next residual of a tile in one loop (two for the
//      bucket-scaled codecs: their scale needs the bucket's p first), without the decoded
//      tile buffer or the codec's decode-side checks, which its own bytes cannot fail.
//      Untiled codecs: topk, randk, threshold, dgc, and zipml with scope=tensor (one set of
//      levels per message), after the read-only pass. Memory ef: p is written into the
//      residual in place, encoded,
//      and decode_add(msg, residual, -1) turns the kept elements into p - d; every other
//      element keeps p - 0 = p. Only the kept elements are touched after selection (ef
//      with scale s != 1: one more pass, e = p / s, before the decode_add, since every
//      element's state is p / s - d). ef21: p into a scratch vector, encode, then
//      decode_add(msg, g_i, +1) on the kept elements. dgc: scratch p and d.
//   Scaled ef (s != 1) performs the arithmetic of ef.cc's compensate and update:
//   p = (g + e) * s, e = p / s - d.
//   Why bit-identical: step 2 performs the reference's fp32 operations on the same
//   operands (x + (-1 * d) == x - d and g + 1 * d == g + d exactly in IEEE arithmetic),
//   the tile encodes write the bytes of the whole-message encode (Codec's tiling
//   contract), and the codec cannot fail on the tiles once every |p| is below
//   2^50 (no bucket statistic of a finite p that small overflows: see kSafeMaxAbs).
//   A bucket with some |p| >= 2^50 (finite) takes the scratch path: p and d in
//   per-thread scratch vectors, the reference's passes, state updated only on success.
//
// Scratch: per-thread (thread_local) tile buffers, plus vectors of n floats for the
// untiled codecs that need them (ef21, dgc, the |p| >= 2^50 case); they grow to the
// largest bucket seen on that thread and are kept. Double-buffered memories keep a
// second n-float vector per state (MemoryState::spare).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "quant/codec.h"
#include "quant/cpu.h"
#include "quant/ef_tile.h"
#include "quant/memory.h"
#include "quant/status.h"

namespace gradzip::quant {

/// Largest |p| (exclusive) the tiled and in-place paths accept: a codec statistic of a
/// bucket of at most 2^24 elements below 2^50 in magnitude cannot overflow fp32
/// (a sum of squares stays below 2^124).
constexpr float kSafeMaxAbs = 0x1p50f;

/// What a memory contributes to the fused path, on element ranges [i0, i0 + cnt) of one
/// bucket. Neither method may fail; both are called only after the whole bucket passed
/// step 1.
class FeedbackOps {
 public:
  virtual ~FeedbackOps() = default;
  /// p[j] = the compensated value of element i0 + j (what compensate() writes) for
  /// j < cnt, without changing the state. p may alias the memory's residual at i0 (the
  /// in-place sparse path): each element is read before it is written.
  virtual void compensated(std::size_t i0, std::size_t cnt, float* p) const = 0;
  /// Step 1 on elements [i0, i0 + cnt): the largest class of |p| (AbsClass). The default
  /// computes compensated() into a stack tile.
  virtual AbsClass classify(std::size_t i0, std::size_t cnt) const;
  /// compensated() and classify() of elements [i0, i0 + cnt) in one pass: p[j] = the
  /// compensated value, returns their largest AbsClass. p must not alias the state (a
  /// tile buffer). The tiled path of a double-buffered memory calls it, so the class
  /// test rides on the loop that waits for grad and state to come from memory. The
  /// default runs compensated(), then classify_values() over p.
  virtual AbsClass compensated_class(std::size_t i0, std::size_t cnt, float* p) const;
  /// Moves the state of elements [i0, i0 + cnt) to what compensate() then update(p, d)
  /// leave (p: the compensated values, d: the decoded message).
  virtual void update(std::size_t i0, std::size_t cnt, const float* p, const float* d) = 0;

  /// How an untiled codec's message updates the state without a decoded vector.
  enum class Sparse {
    kGeneric,                ///< scratch p and d, then update(0, n, p, d)
    kResidualMinusDecoded,   ///< ef: target = p in place, then target -= decoded
    kStatePlusDecoded,       ///< ef21: p in scratch, then target += decoded
  };
  virtual Sparse sparse() const { return Sparse::kGeneric; }
  /// The state vector (n floats) of kResidualMinusDecoded / kStatePlusDecoded.
  virtual float* sparse_target() { return nullptr; }
  /// kResidualMinusDecoded, after the encode: turns sparse_target()[0, n), which holds p,
  /// into the state of an element the message does not carry (update(p, 0)); the kept
  /// elements then get target + (-1 * d). Default: nothing (the state is p - 0 = p); ef
  /// with scale s != 1 divides by s, one pass over the bucket.
  virtual void unsent_residual(std::size_t n) { (void)n; }

  /// Memory ef (p = (g + e) * s, next state p / s - d; p = g + e and p - d at scale 1;
  /// double buffered): the vectors a codec's fused tile kernel (Codec::ef_tile) reads and
  /// writes instead of calling compensated_class() and update(), and the scale (a kernel
  /// runs at s != 1 only when Codec::ef_tile_scales()). Default: false (no kernel applies).
  struct PlainResidual {
    const float* grad = nullptr;
    const float* residual = nullptr;
    float* next = nullptr;   ///< the next state (committed by commit())
    bool stream = false;     ///< write `next` with streaming stores (stream_copy)
    float scale = 1.0f;      ///< memory ef's s: p = (g + e) * s, next = p / s - d (EfTile::scale)
  };
  virtual bool plain_residual(PlainResidual* out) const {
    (void)out;
    return false;
  }

  /// True when update() writes the next state aside and commit() installs it (step 1):
  /// the tiled path then classifies tile by tile instead of in a read-only pass first.
  virtual bool double_buffered() const { return false; }
  /// After the update() calls of a successful encode (tiled or scratch path): installs
  /// the state they wrote. Default: nothing (update() wrote in place).
  virtual void commit() {}
};

/// Buckets of at least this many elements (1 MiB of floats, about an L2) write the next
/// state with streaming stores.
constexpr std::size_t kStreamingNumel = std::size_t{1} << 18;

/// dst[0, bytes) = src[0, bytes), with non-temporal (cache-bypassing) stores on the
/// 16-byte aligned part of dst on x86-64; a plain copy elsewhere. Call streaming_fence()
/// before another thread may read dst.
void stream_copy(void* dst, const void* src, std::size_t bytes);
/// Orders the streaming stores of this thread before its later stores (sfence).
void streaming_fence();

/// FeedbackOps of a memory whose state is MemoryState::residual (ef, ef21), double
/// buffered: update() writes the next residual into MemoryState::spare through
/// store_next(), commit() swaps the two vectors. The sparse paths work in place on the
/// residual (sparse_target). Both vectors must hold n floats.
class ResidualOps : public FeedbackOps {
 public:
  ResidualOps(const float* grad, MemoryState* state)
      : grad_(grad),
        residual_(state->residual.data()),
        next_(state->spare.data()),
        state_(state),
        stream_(state->residual.size() >= kStreamingNumel) {}
  bool double_buffered() const final { return true; }
  void commit() final {
    if (stream_) streaming_fence();
    state_->residual.swap(state_->spare);
  }
  float* sparse_target() final { return residual_; }

 protected:
  /// next residual[i0 + j] = value(j) for j < cnt.
  template <typename Value>
  __attribute__((always_inline)) void store_next(std::size_t i0, std::size_t cnt, Value value) {
    if (!stream_) {
      float* __restrict e = next_ + i0;
      for (std::size_t j = 0; j < cnt; ++j) e[j] = value(j);
      return;
    }
    float t[1024];
    for (std::size_t k0 = 0; k0 < cnt; k0 += 1024) {
      const std::size_t m = cnt - k0 < 1024 ? cnt - k0 : 1024;
      for (std::size_t j = 0; j < m; ++j) t[j] = value(k0 + j);
      stream_copy(next_ + i0 + k0, t, 4 * m);
    }
  }

  /// grad, residual and next state of plain_residual().
  PlainResidual plain() const { return {grad_, residual_, next_, stream_}; }

  const float* grad_;
  float* residual_;  ///< the state (read; written in place only by the sparse paths)
  float* next_;      ///< the next state of the tiled and scratch paths

 private:
  MemoryState* state_;
  bool stream_;
};

/// Encodes the compensated bucket of n elements (ops.compensated) with `codec` into
/// out[0, out_capacity), sets *out_bytes, and moves the state (ops.update); same bytes
/// and state bits as the reference path above. Errors before anything is written:
/// kInvalidArgument (null out/out_bytes, n > 2^34, ctx.first_element != 0),
/// kBufferTooSmall, kNonFiniteInput (a NaN/Inf compensated value; the state is untouched).
/// Thread-safe for distinct ops/states (scratch is per thread).
Status encode_with_feedback(const Codec& codec, FeedbackOps& ops, std::size_t n, const SeedContext& ctx,
                            std::uint8_t* out, std::size_t out_capacity, std::size_t* out_bytes);

/// Memory::encode_step of a memory whose fused operations need only the residual (ef,
/// ef21; Ops derives from ResidualOps): refuses a null grad, sizes state->residual to n
/// (zeros, as compensate does) and state->spare to n, runs encode_with_feedback with
/// Ops(grad, state, args...) and counts the step on success.
template <typename Ops, typename... Args>
Status residual_feedback_step(const Codec& codec, const float* grad, std::size_t n, const SeedContext& ctx,
                              MemoryState* state, std::uint8_t* out, std::size_t out_capacity,
                              std::size_t* out_bytes, Args... args) {
  if (grad == nullptr && n != 0) return Status(Errc::kInvalidArgument, "null gradient");
  if (state->residual.size() != n) state->residual.assign(n, 0.0f);
  if (state->spare.size() != n) state->spare.resize(n);
  Ops ops(grad, state, args...);
  GZ_RETURN_IF_ERROR(encode_with_feedback(codec, ops, n, ctx, out, out_capacity, out_bytes));
  ++state->steps;
  return Status::Ok();
}

}  // namespace gradzip::quant
