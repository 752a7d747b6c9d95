// Host side of the CUDA twins: error reporting, message finalisation, the shared parts
// of CudaCodec (argument checks, host validation before decode), the memory+codec step
// and the factory. Host code only (no kernels): kept in one small translation unit so
// nvcc time stays low.
#include <cuda_runtime_api.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "quant/cuda.h"
#include "quant/cuda_registry.h"
#include "quant/registry.h"
#include "quant/wire.h"

namespace gradzip::quant::cuda {

Status cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  return Status(Errc::kCuda, std::string(file) + ":" + std::to_string(line) + ": " + expr + ": " +
                                 cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

DeviceProbe classify_device_count(cudaError_t err, int count) {
  if (err == cudaSuccess) return count > 0 ? DeviceProbe::kAvailable : DeviceProbe::kNoDevice;
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) return DeviceProbe::kNoDevice;
  return DeviceProbe::kError;
}

DeviceProbe probe_device(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) (void)cudaGetLastError();  // clear the sticky error for later callers
  const DeviceProbe probe = classify_device_count(err, count);
  if (why != nullptr && probe != DeviceProbe::kAvailable) {
    *why = err == cudaSuccess ? std::string("no CUDA device on this machine (cudaGetDeviceCount returned 0)")
                              : std::string(probe == DeviceProbe::kNoDevice ? "no usable CUDA device: "
                                                                            : "CUDA runtime error: ") +
                                    cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
  }
  return probe;
}

bool device_available(std::string* why) { return probe_device(why) == DeviceProbe::kAvailable; }

bool gpu_required() {
  const char* value = std::getenv("GRADZIP_REQUIRE_GPU");
  return value != nullptr && std::string(value) == "1";
}

Status finalize_message(std::uint8_t* h_msg, std::size_t capacity, std::size_t* message_bytes) {
  if (h_msg == nullptr || message_bytes == nullptr) return Status(Errc::kInvalidArgument, "null pointer");
  if (capacity < kHeaderBytes) return Status(Errc::kTruncated, "buffer shorter than the header");
  const auto device_status = load_le<std::uint32_t>(h_msg + kDeviceStatusOffset);
  if (device_status != 0) {
    const auto code = static_cast<Errc>(device_status);
    return Status(code, std::string("the encode kernel reported ") + errc_name(code) +
                            (code == Errc::kNonFiniteInput ? " (gradient holds NaN or Inf)" : ""));
  }
  if (load_le<std::uint32_t>(h_msg) != kWireMagic) return Status(Errc::kBadMagic, "device message has no header");
  const auto payload_bytes = load_le<std::uint64_t>(h_msg + 16);
  const auto params_bytes = load_le<std::uint32_t>(h_msg + 24);
  if (params_bytes > capacity - kHeaderBytes || payload_bytes > capacity - kHeaderBytes - params_bytes) {
    return Status(Errc::kTruncated, "header declares " + std::to_string(params_bytes) + " + " +
                                        std::to_string(payload_bytes) + " bytes, buffer holds " +
                                        std::to_string(capacity - kHeaderBytes));
  }
  store_le<std::uint64_t>(h_msg + kDeviceStatusOffset, message_checksum(h_msg, params_bytes, payload_bytes));
  *message_bytes = kHeaderBytes + params_bytes + payload_bytes;
  return Status::Ok();
}

// ---- CudaCodec ------------------------------------------------------------------

Status CudaCodec::check_encode_args(const float* d_grad, const float* d_residual, std::size_t n,
                                    const SeedContext& ctx, const std::uint8_t* d_out, std::size_t out_capacity,
                                    const void* d_workspace, std::size_t* workspace_bytes,
                                    std::size_t workspace_needed, bool* query) const {
  if (workspace_bytes == nullptr) return Status(Errc::kInvalidArgument, "workspace_bytes is null");
  if (d_workspace == nullptr) {
    *workspace_bytes = workspace_needed;
    *query = true;
    return Status::Ok();
  }
  *query = false;
  if (*workspace_bytes < workspace_needed) {
    return Status(Errc::kBufferTooSmall, "workspace of " + std::to_string(*workspace_bytes) + " bytes, need " +
                                             std::to_string(workspace_needed));
  }
  if ((d_grad == nullptr && n != 0) || d_out == nullptr) return Status(Errc::kInvalidArgument, "null device pointer");
  if (reinterpret_cast<std::uintptr_t>(d_out) % kMessageAlignment != 0) {
    return Status(Errc::kInvalidArgument, "d_out must be " + std::to_string(kMessageAlignment) + "-byte aligned");
  }
  if (reinterpret_cast<std::uintptr_t>(d_grad) % 4 != 0 || reinterpret_cast<std::uintptr_t>(d_residual) % 4 != 0) {
    return Status(Errc::kInvalidArgument, "d_grad / d_residual must be 4-byte aligned");
  }
  if (n > kMaxMessageNumel) return Status(Errc::kInvalidArgument, "bucket larger than 2^34 elements");
  if (ctx.bucket >= (1u << 24)) return Status(Errc::kInvalidArgument, "bucket index must be < 2^24 (Philox layout)");
  const std::size_t need = max_encoded_bytes(n);
  if (out_capacity < need) {
    return Status(Errc::kBufferTooSmall, "encode of " + std::to_string(n) + " elements needs " +
                                             std::to_string(need) + " bytes, got " + std::to_string(out_capacity));
  }
  if (d_residual != nullptr && n != 0) {
    const auto* r = reinterpret_cast<const std::uint8_t*>(d_residual);
    const auto* g = reinterpret_cast<const std::uint8_t*>(d_grad);
    const bool overlap_g = r < g + 4 * n && g < r + 4 * n;
    const bool overlap_out = r < d_out + need && d_out < r + 4 * n;
    if (overlap_g || overlap_out) return Status(Errc::kInvalidArgument, "d_residual overlaps d_grad or d_out");
  }
  return Status::Ok();
}

namespace {
/// Two-phase decode workspace shared by the four decode calls. workspace_bytes ==
/// nullptr: the overload without workspace (0 bytes available). A size query
/// (d_workspace == nullptr, workspace_bytes given) writes `need` and sets *query.
/// Whether the available bytes suffice is checked by the codec (decode_payload_ws) after
/// it has validated the message, whose own params fix the need: a corrupt message is
/// answered as such, not as a workspace error.
void decode_workspace(std::size_t need, const void* d_workspace, std::size_t* workspace_bytes,
                      std::size_t* available, bool* query) {
  *query = workspace_bytes != nullptr && d_workspace == nullptr;
  if (*query) *workspace_bytes = need;
  *available = (workspace_bytes != nullptr && d_workspace != nullptr) ? *workspace_bytes : 0;
}

/// Host checks shared by decode and decode_own before any kernel reads the message.
Status check_decode_pointers(const std::uint8_t* d_msg, const float* d_out, std::size_t n) {
  if ((d_out == nullptr && n != 0) || d_msg == nullptr) return Status(Errc::kInvalidArgument, "null device pointer");
  if (reinterpret_cast<std::uintptr_t>(d_msg) % kMessageAlignment != 0) {
    return Status(Errc::kInvalidArgument, "d_msg must be " + std::to_string(kMessageAlignment) + "-byte aligned");
  }
  return Status::Ok();
}
}  // namespace

Status CudaCodec::decode_impl(const std::uint8_t* h_msg, const std::uint8_t* d_msg, std::size_t bytes, float* d_out,
                              std::size_t n, float scale, bool accumulate, void* d_workspace,
                              std::size_t* workspace_bytes, cudaStream_t stream) const {
  bool query = false;
  std::size_t available = 0;
  decode_workspace(decode_workspace_bytes(n), d_workspace, workspace_bytes, &available, &query);
  if (query) return Status::Ok();
  GZ_RETURN_IF_ERROR(check_decode_pointers(d_msg, d_out, n));
  MessageView m;
  GZ_RETURN_IF_ERROR(parse_message_for(h_msg, bytes, id(), n, &m));
  if (accumulate && !(scale - scale == 0.0f)) return Status(Errc::kInvalidArgument, "non-finite decode_add scale");
  return decode_payload_ws(&m, d_msg, n, d_out, scale, accumulate, d_workspace, available, stream);
}

Status CudaCodec::decode_own_impl(const std::uint8_t* d_msg, std::size_t n, float* d_out, float scale,
                                  bool accumulate, void* d_workspace, std::size_t* workspace_bytes,
                                  cudaStream_t stream) const {
  bool query = false;
  std::size_t available = 0;
  decode_workspace(decode_workspace_bytes(n), d_workspace, workspace_bytes, &available, &query);
  if (query) return Status::Ok();
  // The kernels read the header and payload with 8-byte loads: a misaligned message must be
  // refused here, as decode does, not fault on the device.
  GZ_RETURN_IF_ERROR(check_decode_pointers(d_msg, d_out, n));
  return decode_payload_ws(nullptr, d_msg, n, d_out, scale, accumulate, d_workspace, available, stream);
}

Status CudaCodec::decode(const std::uint8_t* h_msg, const std::uint8_t* d_msg, std::size_t bytes, float* d_out,
                         std::size_t n, cudaStream_t stream) const {
  return decode_impl(h_msg, d_msg, bytes, d_out, n, 1.0f, false, nullptr, nullptr, stream);
}

Status CudaCodec::decode(const std::uint8_t* h_msg, const std::uint8_t* d_msg, std::size_t bytes, float* d_out,
                         std::size_t n, void* d_workspace, std::size_t* workspace_bytes, cudaStream_t stream) const {
  if (workspace_bytes == nullptr) return Status(Errc::kInvalidArgument, "workspace_bytes is null");
  return decode_impl(h_msg, d_msg, bytes, d_out, n, 1.0f, false, d_workspace, workspace_bytes, stream);
}

Status CudaCodec::decode_add(const std::uint8_t* h_msg, const std::uint8_t* d_msg, std::size_t bytes, float* d_acc,
                             std::size_t n, float scale, cudaStream_t stream) const {
  return decode_impl(h_msg, d_msg, bytes, d_acc, n, scale, true, nullptr, nullptr, stream);
}

Status CudaCodec::decode_add(const std::uint8_t* h_msg, const std::uint8_t* d_msg, std::size_t bytes, float* d_acc,
                             std::size_t n, float scale, void* d_workspace, std::size_t* workspace_bytes,
                             cudaStream_t stream) const {
  if (workspace_bytes == nullptr) return Status(Errc::kInvalidArgument, "workspace_bytes is null");
  return decode_impl(h_msg, d_msg, bytes, d_acc, n, scale, true, d_workspace, workspace_bytes, stream);
}

Status CudaCodec::decode_own(const std::uint8_t* d_msg, std::size_t n, float* d_out, cudaStream_t stream) const {
  return decode_own_impl(d_msg, n, d_out, 1.0f, false, nullptr, nullptr, stream);
}

Status CudaCodec::decode_own(const std::uint8_t* d_msg, std::size_t n, float* d_out, void* d_workspace,
                             std::size_t* workspace_bytes, cudaStream_t stream) const {
  if (workspace_bytes == nullptr) return Status(Errc::kInvalidArgument, "workspace_bytes is null");
  return decode_own_impl(d_msg, n, d_out, 1.0f, false, d_workspace, workspace_bytes, stream);
}

Status CudaCodec::decode_add_own(const std::uint8_t* d_msg, std::size_t n, float* d_acc, float scale,
                                 cudaStream_t stream) const {
  return decode_own_impl(d_msg, n, d_acc, scale, true, nullptr, nullptr, stream);
}

Status CudaCodec::decode_add_own(const std::uint8_t* d_msg, std::size_t n, float* d_acc, float scale,
                                 void* d_workspace, std::size_t* workspace_bytes, cudaStream_t stream) const {
  if (workspace_bytes == nullptr) return Status(Errc::kInvalidArgument, "workspace_bytes is null");
  return decode_own_impl(d_msg, n, d_acc, scale, true, d_workspace, workspace_bytes, stream);
}

// ---- memory + codec ----------------------------------------------------------------

namespace {
constexpr std::size_t kWorkspaceAlign = 256;
std::size_t align_up(std::size_t v) { return (v + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign; }
}  // namespace

Status encode_with_memory(const CudaMemory& memory, const CudaCodec& codec, const float* d_grad, std::size_t n,
                          const SeedContext& ctx, CudaMemoryState* state, std::uint8_t* d_out,
                          std::size_t out_capacity, std::uint64_t* d_message_bytes, void* d_workspace,
                          std::size_t* workspace_bytes, cudaStream_t stream) {
  if (workspace_bytes == nullptr || state == nullptr) return Status(Errc::kInvalidArgument, "null argument");
  if (memory.needs_residual() && state->d_residual == nullptr && d_workspace != nullptr) {
    return Status(Errc::kInvalidArgument, "memory '" + memory.spec() + "' needs state->d_residual");
  }
  if (memory.needs_momentum() && state->d_momentum == nullptr && d_workspace != nullptr) {
    return Status(Errc::kInvalidArgument, "memory '" + memory.spec() + "' needs state->d_momentum");
  }
  if (memory.needs_scratch() && state->d_scratch == nullptr && d_workspace != nullptr) {
    return Status(Errc::kInvalidArgument, "memory '" + memory.spec() + "' needs state->d_scratch");
  }
  if (memory.passthrough() || memory.fusable_residual()) {
    // The common case, one fused kernel: x = g + e; message; e = x - decode(x).
    float* d_residual = memory.fusable_residual() ? state->d_residual : nullptr;
    GZ_RETURN_IF_ERROR(codec.encode(d_grad, d_residual, n, ctx, d_out, out_capacity, d_message_bytes, d_workspace,
                                    workspace_bytes, stream));
    if (d_workspace != nullptr) ++state->steps;
    return Status::Ok();
  }
  // General memory (e.g. dgc): compensate -> encode -> decode -> update, through two
  // n-float temporaries placed after the codec's own workspace.
  std::size_t codec_bytes = 0;
  GZ_RETURN_IF_ERROR(codec.encode(d_grad, nullptr, n, ctx, d_out, out_capacity, d_message_bytes, nullptr,
                                  &codec_bytes, stream));
  // The same region serves the encode and then decode_own (stream-ordered).
  const std::size_t decode_bytes = memory.needs_decoded() ? codec.decode_workspace_bytes(n) : 0;
  if (decode_bytes > codec_bytes) codec_bytes = decode_bytes;
  const std::size_t temp_bytes = align_up(4 * n);
  const std::size_t total = align_up(codec_bytes) + 2 * temp_bytes;
  if (d_workspace == nullptr) {
    *workspace_bytes = total;
    return Status::Ok();
  }
  if (*workspace_bytes < total) {
    return Status(Errc::kBufferTooSmall, "workspace of " + std::to_string(*workspace_bytes) + " bytes, need " +
                                             std::to_string(total));
  }
  auto* base = static_cast<std::uint8_t*>(d_workspace);
  auto* d_compensated = reinterpret_cast<float*>(base + align_up(codec_bytes));
  auto* d_decoded = reinterpret_cast<float*>(base + align_up(codec_bytes) + temp_bytes);
  GZ_RETURN_IF_ERROR(memory.compensate(d_grad, d_compensated, n, state, stream));
  std::size_t region_bytes = codec_bytes;
  GZ_RETURN_IF_ERROR(codec.encode(d_compensated, nullptr, n, ctx, d_out, out_capacity, d_message_bytes, base,
                                  &region_bytes, stream));
  region_bytes = codec_bytes;
  if (memory.needs_decoded()) {
    GZ_RETURN_IF_ERROR(codec.decode_own(d_out, n, d_decoded, base, &region_bytes, stream));
  }
  return memory.update(d_compensated, d_decoded, n, state, stream);
}

// ---- factory -----------------------------------------------------------------------

std::vector<std::uint8_t> cpu_params_block(const Codec& cpu) {
  // An empty message carries the header and the params block only (every codec's payload
  // for 0 elements is empty), so this is exactly what cpu.write_params writes.
  const std::vector<std::uint8_t> msg = cpu.encode(nullptr, 0, SeedContext{});
  const auto params_bytes = load_le<std::uint32_t>(msg.data() + 24);
  return std::vector<std::uint8_t>(msg.begin() + kHeaderBytes, msg.begin() + kHeaderBytes + params_bytes);
}

namespace {

const std::vector<const CudaCodecEntry*>& cuda_codec_entries() {
  // The rows of quant/codecs/codec_list.inc marked CUDA, in its order (the CPU registry's).
  static const std::vector<const CudaCodecEntry*> entries = {
#define GRADZIP_CODEC(enumerator, wire_id, stem, twin) GRADZIP_CODEC_TWIN_ENTRY_##twin(stem)
#define GRADZIP_CODEC_TWIN_ENTRY_CUDA(stem) &cuda_##stem##_entry(),
#define GRADZIP_CODEC_TWIN_ENTRY_CPU_ONLY(stem)
#include "quant/codecs/codec_list.inc"
#undef GRADZIP_CODEC
#undef GRADZIP_CODEC_TWIN_ENTRY_CUDA
#undef GRADZIP_CODEC_TWIN_ENTRY_CPU_ONLY
  };
  return entries;
}

const std::vector<const CudaMemoryEntry*>& cuda_memory_entries() {
  static const std::vector<const CudaMemoryEntry*> entries = {
      &cuda_none_memory_entry(),
      &cuda_ef_memory_entry(),
      &cuda_dgc_memory_entry(),
  };
  return entries;
}

template <typename Entries>
std::string join_names(const Entries& entries) {
  std::string s;
  for (const auto* e : entries) s += (s.empty() ? "" : ", ") + e->name;
  return s;
}

}  // namespace

std::unique_ptr<CudaCodec> make_cuda_codec(const std::string& spec) {
  auto [name, raw] = split_spec(spec);
  const CodecEntry* cpu = find_codec(name);
  if (cpu == nullptr) throw SpecError("unknown codec '" + name + "'; available: " + join_names(codec_entries()));
  for (const auto* e : cuda_codec_entries()) {
    if (e->name == name) {
      const Params params = resolve_params(name, cpu->params, raw);
      const std::unique_ptr<Codec> cpu_codec = cpu->make(params);
      return e->make(params, *cpu_codec);
    }
  }
  throw SpecError("codec '" + name + "' has no CUDA twin; codecs with one: " + join_names(cuda_codec_entries()));
}

std::unique_ptr<CudaMemory> make_cuda_memory(const std::string& spec) {
  auto [name, raw] = split_spec(spec);
  const MemoryEntry* cpu = find_memory(name);
  if (cpu == nullptr) throw SpecError("unknown memory '" + name + "'; available: " + join_names(memory_entries()));
  for (const auto* e : cuda_memory_entries()) {
    if (e->name == name) return e->make(resolve_params(name, cpu->params, raw));
  }
  throw SpecError("memory '" + name + "' has no CUDA twin; memories with one: " + join_names(cuda_memory_entries()));
}

std::vector<std::string> cuda_codec_names() {
  std::vector<std::string> names;
  for (const auto* e : cuda_codec_entries()) names.push_back(e->name);
  return names;
}

std::vector<std::string> cuda_memory_names() {
  std::vector<std::string> names;
  for (const auto* e : cuda_memory_entries()) names.push_back(e->name);
  return names;
}

}  // namespace gradzip::quant::cuda
