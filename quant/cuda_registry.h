// Registry of the CUDA twins: each quant/codecs/<codec>.cu and quant/memory/<memory>.cu
// defines one entry; quant/cuda_registry.cu lists them. Parameters are declared once, by
// the CPU entry of the same name (quant/registry.h), and resolved with its ParamInfo.
#pragma once

#include <memory>
#include <string>

#include "quant/cuda.h"
#include "quant/spec.h"

namespace gradzip::quant::cuda {

struct CudaCodecEntry {
  std::string name;                                          ///< same as the CPU entry's name
  std::unique_ptr<CudaCodec> (*make)(const Params& params);  ///< params validated by the CPU decl
};

struct CudaMemoryEntry {
  std::string name;
  std::unique_ptr<CudaMemory> (*make)(const Params& params);
};

// One function per .cu file.
const CudaCodecEntry& cuda_identity_entry();
const CudaCodecEntry& cuda_fp16_entry();
const CudaCodecEntry& cuda_bf16_entry();
const CudaMemoryEntry& cuda_none_memory_entry();
const CudaMemoryEntry& cuda_ef_memory_entry();

}  // namespace gradzip::quant::cuda
