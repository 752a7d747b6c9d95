// Registry of the CUDA twins: each quant/codecs/<codec>.cu and quant/memory/<memory>.cu
// defines one entry; quant/cuda_registry.cu lists them. Parameters are declared once, by
// the CPU entry of the same name (quant/registry.h), and resolved with its ParamInfo.
#pragma once

#include <memory>
#include <cstdint>
#include <string>
#include <vector>

#include "quant/codec.h"

#include "quant/cuda.h"
#include "quant/spec.h"

namespace gradzip::quant::cuda {

struct CudaCodecEntry {
  std::string name;  ///< same as the CPU entry's name
  /// Builds the twin from validated params. `cpu` is the CPU codec built from the same
  /// params: the twin copies its spec() and params block (cpu_params_block) so both sides
  /// describe themselves with the same bytes by construction.
  std::unique_ptr<CudaCodec> (*make)(const Params& params, const Codec& cpu);
};

/// The params block the CPU codec writes (bytes [40, 40 + P) of its message for n = 0).
std::vector<std::uint8_t> cpu_params_block(const Codec& cpu);

struct CudaMemoryEntry {
  std::string name;
  std::unique_ptr<CudaMemory> (*make)(const Params& params);
};

// One function per .cu file.
const CudaCodecEntry& cuda_identity_entry();
const CudaCodecEntry& cuda_fp16_entry();
const CudaCodecEntry& cuda_bf16_entry();
const CudaCodecEntry& cuda_int8_entry();
const CudaCodecEntry& cuda_qsgd_entry();
const CudaCodecEntry& cuda_terngrad_entry();
const CudaCodecEntry& cuda_sign_entry();
const CudaCodecEntry& cuda_scaled_sign_entry();
const CudaCodecEntry& cuda_onebit_entry();
const CudaCodecEntry& cuda_natural_entry();
const CudaCodecEntry& cuda_topk_entry();
const CudaCodecEntry& cuda_randk_entry();
const CudaCodecEntry& cuda_threshold_entry();
const CudaCodecEntry& cuda_dgc_entry();
const CudaMemoryEntry& cuda_none_memory_entry();
const CudaMemoryEntry& cuda_ef_memory_entry();
const CudaMemoryEntry& cuda_dgc_memory_entry();

}  // namespace gradzip::quant::cuda
