// Device-side building blocks shared by the CUDA twins (nvcc only; not part of the
// plain-C++ interface in quant/cuda.h).
//
//   * MessagePrefix: header + params prepared on the host (everything but the checksum
//     slot) and passed to the encode kernel by value, so no host-to-device copy (and no
//     pageable-memory sync) is needed to write them.
//   * warp_canonical_sum: one warp reproduces quant/reduce.h bit for bit.
//   * report_device_error: the device status word in the checksum slot (quant/cuda.h).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "quant/cuda.h"
#include "quant/reduce.h"
#include "quant/wire.h"

namespace gradzip::quant::cuda {

constexpr int kBlockThreads = 256;
constexpr int kWarpsPerBlock = kBlockThreads / 32;
/// Largest params block a CUDA codec may declare (kernel-argument budget).
constexpr std::size_t kMaxParamsBytes = 24;
/// Largest host-known payload lead (bytes at the start of the payload that the host
/// knows before launching: dgc's step field, randk's seed context).
constexpr std::size_t kMaxLeadBytes = 24;

/// Header (checksum slot zeroed) + params [+ payload lead], as they go to d_out[0, bytes).
struct MessagePrefix {
  std::uint32_t words[(kHeaderBytes + kMaxParamsBytes + kMaxLeadBytes + 3) / 4];
  std::uint32_t bytes;  ///< kHeaderBytes + params_bytes + lead bytes
  std::uint32_t lead;   ///< payload bytes included in `bytes` (a sparse block starts after them)
};

/// Host: the prefix of a message; `payload_bytes` may be a placeholder the kernels
/// overwrite later (sparse codecs). `lead` (lead_bytes, may be null when 0) are the first
/// payload bytes when the host knows them (they count in payload_bytes and in the
/// kernels' payload length). Returns kInvalidArgument if params or lead are too long.
inline Status make_prefix(CodecId codec, std::uint8_t flags, std::uint64_t numel, const std::uint8_t* params,
                          std::size_t params_bytes, std::uint64_t payload_bytes, MessagePrefix* prefix,
                          const std::uint8_t* lead = nullptr, std::size_t lead_bytes = 0) {
  if (params_bytes > kMaxParamsBytes) return Status(Errc::kInvalidArgument, "params block too long for the CUDA prefix");
  if (lead_bytes > kMaxLeadBytes) return Status(Errc::kInvalidArgument, "payload lead too long for the CUDA prefix");
  std::uint8_t buf[sizeof(prefix->words)] = {};
  store_le<std::uint32_t>(buf + 0, kWireMagic);
  store_le<std::uint16_t>(buf + 4, kWireVersion);
  buf[6] = static_cast<std::uint8_t>(codec);
  buf[7] = flags;
  store_le<std::uint64_t>(buf + 8, numel);
  store_le<std::uint64_t>(buf + 16, payload_bytes);
  store_le<std::uint32_t>(buf + 24, static_cast<std::uint32_t>(params_bytes));
  store_le<std::uint32_t>(buf + 28, 0);
  store_le<std::uint64_t>(buf + kDeviceStatusOffset, 0);  // device status: ok (see quant/cuda.h)
  for (std::size_t i = 0; i < params_bytes; ++i) buf[kHeaderBytes + i] = params[i];
  for (std::size_t i = 0; i < lead_bytes; ++i) buf[kHeaderBytes + params_bytes + i] = lead[i];
  std::memcpy(prefix->words, buf, sizeof(buf));
  prefix->bytes = static_cast<std::uint32_t>(kHeaderBytes + params_bytes + lead_bytes);
  prefix->lead = static_cast<std::uint32_t>(lead_bytes);
  return Status::Ok();
}

/// Device: threads of one block write the prefix except the status word, which the
/// caller zeroes with cudaMemsetAsync before the kernel (blocks other than this one may
/// set it concurrently, so it must not be overwritten here).
__device__ __forceinline__ void write_prefix(std::uint8_t* d_out, const MessagePrefix& prefix) {
  for (std::uint32_t b = threadIdx.x; b < prefix.bytes; b += blockDim.x) {
    if (b >= kDeviceStatusOffset && b < kDeviceStatusOffset + 8) continue;
    d_out[b] = static_cast<std::uint8_t>(prefix.words[b / 4] >> (8 * (b % 4)));
  }
}

/// Device: record a data-dependent error for finalize_message (first error wins is not
/// needed: every kernel reports one kind, so OR-ing the code is exact).
__device__ __forceinline__ void report_device_error(std::uint8_t* d_out, Errc code) {
  atomicOr(reinterpret_cast<unsigned int*>(d_out + kDeviceStatusOffset), static_cast<unsigned int>(code));
}

/// Host: zero the status word of d_out (stream-ordered), the first step of every encode.
inline Status clear_device_status(std::uint8_t* d_out, cudaStream_t stream) {
  GZ_CUDA_CHECK(cudaMemsetAsync(d_out + kDeviceStatusOffset, 0, 8, stream));
  return Status::Ok();
}

/// One warp's canonical sum (quant/reduce.h): `partial` is this lane's fp32 sum of its
/// lane-strided elements in increasing order; the xor butterfly 16, 8, 4, 2, 1 adds
/// partial[lane] + partial[lane ^ offset], the exact operations of detail::butterfly_sum.
/// Every lane returns the same value. All 32 lanes must call it.
__device__ __forceinline__ float warp_canonical_sum(float partial) {
  for (int offset = kReduceLanes / 2; offset > 0; offset /= 2) {
    partial = partial + __shfl_xor_sync(0xFFFFFFFFu, partial, offset);
  }
  return partial;
}

/// Max over the warp (exact in any order). NaN-propagating like quant::max_abs when the
/// caller folds NaN in separately (fmaxf drops NaN).
__device__ __forceinline__ float warp_max(float v) {
  for (int offset = kReduceLanes / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, offset));
  return v;
}

/// Blocks for a grid-stride loop with kBlockThreads threads each handling ~`per_thread`
/// elements; at least 1 (the prefix must be written even for n == 0).
inline unsigned grid_for(std::size_t n, std::size_t per_thread) {
  const std::size_t per_block = static_cast<std::size_t>(kBlockThreads) * per_thread;
  std::size_t blocks = (n + per_block - 1) / per_block;
  if (blocks == 0) blocks = 1;
  if (blocks > 0x7FFFFFFFu) blocks = 0x7FFFFFFFu;
  return static_cast<unsigned>(blocks);
}

/// Float compare that treats NaN and Inf as "not finite" without relying on isfinite's
/// fast-math behaviour.
__device__ __forceinline__ bool is_finite_f(float x) { return (__float_as_uint(x) & 0x7F800000u) != 0x7F800000u; }

}  // namespace gradzip::quant::cuda
