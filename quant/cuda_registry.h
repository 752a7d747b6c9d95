// Registry of the CUDA twins. Codecs: each row of quant/codecs/codec_list.inc marked CUDA
// has a quant/codecs/<stem>.cu defining cuda_<stem>_entry() (declared below from that
// list); memories: each quant/memory/<memory>.cu defines one entry, declared below by
// hand. quant/cuda.cu holds both tables. Parameters are declared once, by the CPU entry
// of the same name (quant/registry.h), and resolved with its ParamInfo.
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

// One function per codec twin (quant/codecs/<stem>.cu), from the codec list.
#define GRADZIP_CODEC_TWIN_CUDA(stem) const CudaCodecEntry& cuda_##stem##_entry();
#define GRADZIP_CODEC_TWIN_CPU_ONLY(stem)
#define GRADZIP_CODEC(enumerator, wire_id, stem, twin) GRADZIP_CODEC_TWIN_##twin(stem)
#include "quant/codecs/codec_list.inc"
#undef GRADZIP_CODEC
#undef GRADZIP_CODEC_TWIN_CUDA
#undef GRADZIP_CODEC_TWIN_CPU_ONLY
// One function per memory twin (quant/memory/<memory>.cu).
const CudaMemoryEntry& cuda_none_memory_entry();
const CudaMemoryEntry& cuda_ef_memory_entry();
const CudaMemoryEntry& cuda_dgc_memory_entry();

}  // namespace gradzip::quant::cuda
