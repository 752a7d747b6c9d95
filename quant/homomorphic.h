// Homomorphic int8 quantization for an allreduce (THC: Li et al., "THC: Accelerating
// distributed deep learning using tensor homomorphic compression", NSDI 2024). Every rank
// quantizes its bucket with the SAME scale, so the integer codes of R ranks can be summed
// by the collective itself (in an integer type wide enough for R * levels) and the sum is
// decoded once: no rank ever decodes another rank's message.
//
// One bucket, per step, on every rank (the engine owns steps 2 and 5):
//   1. optional: rotate(x, n, cfg.block, shared_ctx)          quant/rotation.h, in place
//   2. s_r = local_max_abs(x)      -> scale = max-allreduce of s_r over the ranks
//   3. encode_local<T>(x, n, scale, cfg.levels, rank_ctx, codes)
//   4. sum-allreduce codes (type T; or accumulate() for an engine that gathers int8)
//   5. decode_sum<T>(sum, n, scale, cfg.levels, weight, out)   weight 1/R gives the mean
//   6. optional: unrotate(out, n, cfg.block, shared_ctx)
// shared_ctx must be equal on all ranks (signs agree: worker field 0); rank_ctx is this
// rank's SeedContext {seed, step, worker = rank, bucket} so the roundings are independent.
// Error feedback (quant/memory.h) composes around it: compensate x before step 1; this
// rank's own dequantized contribution, the `decoded` of Memory::update, is
// decode_sum<T>(own codes, n, scale, levels, 1.0f, decoded), followed by unrotate when
// rotating (compensated and decoded must be in the same coordinates).
//
// Rounding (unbiased, Philox): y_i = x_i * inv with inv = levels / scale (one fp32
// division); q_i = floor(y_i + u_i) with u_i = uniform24(word i) of
// bucketed::rounding_words(rank_ctx, ...) (word i % 4 of random_block(rank_ctx,
// RandomStream::kRounding, i / 4): the stream the int8/qsgd codecs use). floor is taken as
// int32(y_i + u_i + 128) - 128 in fp32; the two fp32 roundings bias E[q_i] - y_i by at
// most 2^-15 levels. q_i is clamped to [-levels, levels] (reached only when u_i rounds
// y + u up to the next integer at |y| = levels). scale < 2^-120 encodes every q_i = 0.
// Decode: step = (scale / levels) * weight in fp32, out_i = float(sum_i) * step; exact
// integer sums make the result independent of the summation order of the collective.
//
// Bytes per element on the wire: sizeof(T) per collective element (1, 2 or 4), against 4
// for fp32; sum_bytes_per_element() picks the narrowest T that cannot overflow, and
// max_levels() the finest levels a given T allows (THC's trade: fewer levels, narrower
// sums). Plus one fp32 per bucket for the scale's max-allreduce.
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/philox.h"
#include "quant/status.h"

namespace gradzip::quant::homomorphic {

constexpr std::int32_t kMaxLevels = 127;  ///< codes fit in int8
constexpr std::uint32_t kDefaultBlock = 4096;

/// What every rank must agree on for one bucket (same on all ranks; the CLI spec
/// "thc:levels=127,rotate=true,block=4096" fills it, quant/aggregation.h).
struct Config {
  std::int32_t levels = kMaxLevels;      ///< codes in [-levels, levels], 1..127
  bool rotate = false;                   ///< randomized Hadamard rotation before quantizing
  std::uint32_t block = kDefaultBlock;   ///< rotation block (power of two), used when rotate
};

/// kOk, or kInvalidArgument naming the bad field.
Status check_config(const Config& config);

/// Narrowest sum type, in bytes (1, 2 or 4), that holds any sum of `ranks` codes of
/// `levels` levels without overflow: ranks * levels <= 127 -> 1, <= 32767 -> 2, else 4.
/// Returns 0 when even int32 could overflow (ranks > 2^31 / levels).
std::size_t sum_bytes_per_element(std::int32_t levels, std::size_t ranks);

/// Finest levels (<= kMaxLevels) whose sum over `ranks` ranks fits a sum type of
/// `sum_bytes` bytes (1, 2 or 4); 0 when none does (e.g. 128 ranks and int8 sums).
std::int32_t max_levels(std::size_t ranks, std::size_t sum_bytes);

/// *max_abs = max_i |x_i| (0 for n == 0): the local statistic whose max over the ranks is
/// the agreed scale. kNonFiniteInput when x holds NaN or Inf.
Status local_max_abs(const float* x, std::size_t n, float* max_abs);

/// codes[i] = q_i (see the header comment) for i < n. T is std::int8_t, std::int16_t or
/// std::int32_t (instantiated in homomorphic.cc). kInvalidArgument, before anything is
/// written, for levels outside 1..127, a scale that is negative, NaN or Inf, ctx.bucket >=
/// 2^24 or n >= 2^34 (Philox counter layout); kInvalidArgument after the pass (codes then
/// unspecified) when an element exceeds the scale, |x_i| > scale * (1 + 2^-20), or is not
/// finite: the scale was not the max of local_max_abs. Thread-safe for distinct outputs.
template <typename T>
Status encode_local(const float* x, std::size_t n, float scale, std::int32_t levels, const SeedContext& ctx,
                    T* codes);

/// sum[i] += codes[i] for i < n, in T (the caller picks T from sum_bytes_per_element).
template <typename T>
void accumulate(const std::int8_t* codes, std::size_t n, T* sum);

/// out[i] = float(sum[i]) * ((scale / levels) * weight). kInvalidArgument for levels
/// outside 1..127 or a non-finite or negative scale or weight.
template <typename T>
Status decode_sum(const T* sum, std::size_t n, float scale, std::int32_t levels, float weight, float* out);

}  // namespace gradzip::quant::homomorphic
