// CUDA twins of the codecs and error-feedback memories: the device-pointer interface.
//
// Includable from plain C++ (g++ without nvcc): the only CUDA type that appears is
// cudaStream_t / cudaError_t from <cuda_runtime_api.h>. Kernels live in .cu files next to
// their CPU twin (quant/codecs/<codec>.cu, quant/memory/<memory>.cu) and are reached
// through the factory make_cuda_codec / make_cuda_memory.
//
// Contract shared by every CUDA twin (the same contract as CUB's device algorithms):
//   * device pointers carry a d_ prefix, host pointers an h_ prefix;
//   * every call takes an explicit stream and is asynchronous with respect to the host:
//     it enqueues work and returns; no cudaMalloc, no host synchronisation;
//   * scratch memory comes from the caller through a two-phase call: pass
//     d_workspace == nullptr and the call only writes the size it needs to
//     *workspace_bytes; allocate that many bytes (once, off the hot path) and call again;
//   * errors the host can see before launching (bad arguments, bad spec, failed launch)
//     come back as a Status; a CUDA runtime failure is Errc::kCuda with "file:line".
//
// Message bytes. The GPU writes the whole message (header, params, payload) into d_out
// except the XXH3-64 checksum at offset 32: while the message is on the device those 8
// bytes hold the encode's device status (little-endian u32 Errc at offset 32, 0 = ok, and
// a zero u32 at 36). The checksum is computed on the host by finalize_message() after the
// device-to-host copy, for three reasons: (1) the message leaves the process from host
// memory anyway (ZeroMQ send, file), so the host pass over the compressed bytes is a
// cache-hot pass over 1-12% of the gradient size; (2) XXH3's stripe/accumulator structure
// is sequential per 1 KiB block and would need its own multi-kernel implementation to run
// near memory speed on a GPU; (3) it gives data-dependent errors found by the kernel (a
// NaN or Inf in the gradient) a place to travel without a host sync. After
// finalize_message the host bytes equal the CPU codec's message byte for byte.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "quant/philox.h"
#include "quant/spec.h"
#include "quant/status.h"
#include "quant/wire.h"

namespace gradzip::quant::cuda {

/// Status for a failed CUDA runtime call: Errc::kCuda, "file:line: expr: cudaErrorName: text".
Status cuda_error(cudaError_t err, const char* expr, const char* file, int line);

/// What probing for a CUDA device found.
///   kAvailable: at least one device.
///   kNoDevice:  this machine has no CUDA device: cudaGetDeviceCount succeeded with 0, or
///               returned cudaErrorNoDevice, or cudaErrorInsufficientDriver — the runtime's
///               answer when no driver library is loaded at all (a host without a GPU
///               driver), so it counts as "no device", not as a fault.
///   kError:     any other error (driver/runtime broken, device busy or lost, ...): a GPU
///               host that cannot run kernels, which GPU tests report as a failure.
enum class DeviceProbe { kAvailable, kNoDevice, kError };

/// Classifies a cudaGetDeviceCount result (pure: no CUDA call; unit-tested on the CPU).
DeviceProbe classify_device_count(cudaError_t err, int count);

/// Probes the runtime (cudaGetDeviceCount); *why (may be null) names the reason when the
/// result is not kAvailable.
DeviceProbe probe_device(std::string* why);

/// True when a CUDA device can run kernels; otherwise false and *why says why (no driver,
/// no device, runtime error, ...).
bool device_available(std::string* why);

/// True when the environment sets GRADZIP_REQUIRE_GPU=1: GPU tests then fail instead of
/// skipping when no device is found.
bool gpu_required();

}  // namespace gradzip::quant::cuda

/// Return a kCuda Status (with file:line) from the enclosing function when `call` fails.
#define GZ_CUDA_CHECK(call)                                                                       \
  do {                                                                                            \
    const cudaError_t gz_cuda_err_ = (call);                                                      \
    if (gz_cuda_err_ != cudaSuccess) return ::gradzip::quant::cuda::cuda_error(gz_cuda_err_, #call, __FILE__, __LINE__); \
  } while (0)

/// Check the kernel launch just issued (launch-configuration errors, e.g. too many blocks).
/// Errors that happen while the kernel runs surface at the next checked call on the stream.
#define GZ_CUDA_CHECK_LAUNCH() GZ_CUDA_CHECK(cudaGetLastError())

namespace gradzip::quant::cuda {

/// Byte offset of the device status word inside a message on the device (see file comment).
constexpr std::size_t kDeviceStatusOffset = 32;
/// Required alignment of d_out for encode (the kernels store the header as 32-bit words).
constexpr std::size_t kMessageAlignment = 16;

/// Turns a message copied from the device into its final wire form: reads the device
/// status word (returns e.g. kNonFiniteInput when the kernel saw a NaN/Inf in the
/// gradient), checks the lengths in the header against `capacity` (bytes readable at
/// h_msg), computes the XXH3-64 checksum and stores it at offset 32. On success
/// *message_bytes is the message length. Host only; h_msg need not be pinned.
Status finalize_message(std::uint8_t* h_msg, std::size_t capacity, std::size_t* message_bytes);

/// A CUDA codec: the device twin of quant::Codec. Immutable after construction; one
/// instance may be used from several host threads on different streams at once.
class CudaCodec {
 public:
  virtual ~CudaCodec() = default;

  /// Wire id (same as the CPU twin's).
  virtual CodecId id() const = 0;
  /// Canonical spec string, identical to the CPU twin's spec().
  virtual std::string spec() const = 0;
  /// Upper bound of the message size in bytes for n elements (same as the CPU twin).
  virtual std::size_t max_encoded_bytes(std::size_t n) const = 0;
  /// True when every message of n elements is exactly max_encoded_bytes(n) long (dense
  /// codecs): the caller may copy that many bytes without reading the header first.
  virtual bool exact_size() const { return true; }

  /// Encodes n fp32 elements into the message at d_out (see the file comment: the
  /// checksum slot holds the device status until finalize_message runs on the host).
  ///   d_grad        in: the gradient (device, n floats, any 4-byte alignment).
  ///   d_residual    in/out, may be null: error feedback fused into the same pass (the
  ///                 "ef" memory): the codec encodes x = grad + residual and writes
  ///                 residual = x - decode(x), exactly like Memory "ef" compensate/update
  ///                 around the CPU codec. Must not overlap d_grad or d_out.
  ///   ctx           the seed context (Philox counters identical to the CPU twin).
  ///   d_out         out: the message, kMessageAlignment-aligned, out_capacity >=
  ///                 max_encoded_bytes(n) bytes.
  ///   d_message_bytes  out, may be null: device (or mapped pinned) u64 that receives the
  ///                 message length when the kernels finish (useful for sparse codecs).
  ///   d_workspace / workspace_bytes: two-phase scratch (null d_workspace = size query;
  ///                 then nothing is launched). Dense codecs need 0 bytes.
  ///   stream        the stream everything is enqueued on.
  /// Host-side errors: kBufferTooSmall, kInvalidArgument (null pointer, misalignment,
  /// n > 2^34, bucket index >= 2^24), kCuda. Data-dependent errors (kNonFiniteInput)
  /// arrive through the device status word; on that error the residual of each bucket
  /// that held a NaN/Inf is left untouched, other buckets are updated.
  virtual Status encode(const float* d_grad, float* d_residual, std::size_t n, const SeedContext& ctx,
                        std::uint8_t* d_out, std::size_t out_capacity, std::uint64_t* d_message_bytes,
                        void* d_workspace, std::size_t* workspace_bytes, cudaStream_t stream) const = 0;

  /// Device scratch (bytes) that decoding an n-element message with this instance's
  /// parameters needs. 0 for every codec except randk, whose decoder regenerates the
  /// Philox selection (a radix select over n keys needs histograms and chunk counts).
  /// Decode workspace (all four decode calls): the overloads without workspace
  /// arguments pass none, which is fine whenever this is 0 (else kInvalidArgument naming
  /// the size); the overloads with (d_workspace, workspace_bytes) are two-phase like
  /// encode: d_workspace == nullptr writes the size to *workspace_bytes and launches
  /// nothing. A message whose own params need more than *workspace_bytes (a randk
  /// message with a larger k than this instance's) is refused with kBufferTooSmall.
  /// The workspace may be the encode workspace of an earlier call on the same stream.
  virtual std::size_t decode_workspace_bytes(std::size_t n) const {
    (void)n;
    return 0;
  }

  /// Decodes a message into d_out[0, n) (every element written). The message is given
  /// twice: h_msg (host bytes, validated here before anything is launched: header,
  /// checksum, codec id, n == numel, params, payload structure, finite scales) and d_msg
  /// (the same bytes on the device, which the kernels read). On error nothing is launched.
  Status decode(const std::uint8_t* h_msg, const std::uint8_t* d_msg, std::size_t bytes, float* d_out,
                std::size_t n, cudaStream_t stream) const;
  Status decode(const std::uint8_t* h_msg, const std::uint8_t* d_msg, std::size_t bytes, float* d_out,
                std::size_t n, void* d_workspace, std::size_t* workspace_bytes, cudaStream_t stream) const;
  /// d_acc[i] += scale * decoded[i] in one fused pass. Same validation as decode.
  Status decode_add(const std::uint8_t* h_msg, const std::uint8_t* d_msg, std::size_t bytes, float* d_acc,
                    std::size_t n, float scale, cudaStream_t stream) const;
  Status decode_add(const std::uint8_t* h_msg, const std::uint8_t* d_msg, std::size_t bytes, float* d_acc,
                    std::size_t n, float scale, void* d_workspace, std::size_t* workspace_bytes,
                    cudaStream_t stream) const;
  /// Decodes a message that this instance's encode just wrote at d_msg on this device
  /// (same n), without a host copy: nothing is validated (the bytes are trusted), the
  /// parameters are this instance's and the payload length of sparse codecs is read on
  /// the device. Used by memories that need C(x) (dgc, ef21) and by tests.
  Status decode_own(const std::uint8_t* d_msg, std::size_t n, float* d_out, cudaStream_t stream) const;
  Status decode_own(const std::uint8_t* d_msg, std::size_t n, float* d_out, void* d_workspace,
                    std::size_t* workspace_bytes, cudaStream_t stream) const;
  /// d_acc[i] += scale * decoded[i] for a message already validated (by decode_add on an
  /// earlier call, or written by this instance): the kernel alone, nothing checked on the
  /// host. For a PS that adds one validated message into several accumulators, and for
  /// benchmarks that time the kernel without the host-side checksum pass.
  Status decode_add_own(const std::uint8_t* d_msg, std::size_t n, float* d_acc, float scale,
                        cudaStream_t stream) const;
  Status decode_add_own(const std::uint8_t* d_msg, std::size_t n, float* d_acc, float scale, void* d_workspace,
                        std::size_t* workspace_bytes, cudaStream_t stream) const;

 protected:
  /// Launches the decode kernel that reads the message at d_msg (device) and writes
  /// d_out[i] = v or d_out[i] += scale * v for i in [0, n). When h_view is not null it is
  /// the host view of the same message, already checked for header, checksum, codec id
  /// and numel: the codec must first validate the rest from it exactly as its CPU twin's
  /// decode_payload does (params, flags, payload length, finite scales, index order),
  /// take the parameters from h_view->params, and launch nothing on error. When h_view is
  /// null (decode_own) the parameters are this instance's.
  virtual Status decode_payload(const MessageView* h_view, const std::uint8_t* d_msg, std::size_t n, float* d_out,
                                float scale, bool accumulate, cudaStream_t stream) const = 0;
  /// The decode entry every public decode call goes through. Codecs whose
  /// decode_workspace_bytes can be > 0 override it; d_workspace (may be null when none
  /// was passed) holds `workspace_bytes` bytes. The default ignores the workspace.
  virtual Status decode_payload_ws(const MessageView* h_view, const std::uint8_t* d_msg, std::size_t n, float* d_out,
                                   float scale, bool accumulate, void* d_workspace, std::size_t workspace_bytes,
                                   cudaStream_t stream) const {
    (void)d_workspace;
    (void)workspace_bytes;
    return decode_payload(h_view, d_msg, n, d_out, scale, accumulate, stream);
  }

  /// Shared argument checks of encode (pointers, alignment, capacity, limits). Sets
  /// *query = true for a size query (d_workspace == nullptr), after writing *workspace_bytes.
  Status check_encode_args(const float* d_grad, const float* d_residual, std::size_t n, const SeedContext& ctx,
                           const std::uint8_t* d_out, std::size_t out_capacity, const void* d_workspace,
                           std::size_t* workspace_bytes, std::size_t workspace_needed, bool* query) const;

 private:
  Status decode_impl(const std::uint8_t* h_msg, const std::uint8_t* d_msg, std::size_t bytes, float* d_out,
                     std::size_t n, float scale, bool accumulate, void* d_workspace, std::size_t* workspace_bytes,
                     cudaStream_t stream) const;
  Status decode_own_impl(const std::uint8_t* d_msg, std::size_t n, float* d_out, float scale, bool accumulate,
                         void* d_workspace, std::size_t* workspace_bytes, cudaStream_t stream) const;
};

/// Device state of one error-feedback memory for one bucket. The caller owns the device
/// buffers (allocated once, zero-filled, e.g. with cudaMemsetAsync); the memory says
/// which it needs. Not thread-safe per state.
struct CudaMemoryState {
  float* d_residual = nullptr;  ///< e_t, n floats (ef, dgc)
  float* d_momentum = nullptr;  ///< u_t, n floats (dgc)
  float* d_scratch = nullptr;   ///< kMemoryScratchBytes of device scratch (dgc: clipping factor, part sums)
  std::uint64_t steps = 0;      ///< number of update() calls so far (host counter)
};
/// Size of CudaMemoryState::d_scratch for memories whose needs_scratch() is true: dgc's
/// clipping factor (16 bytes) and the part sums of its blocked norm (quant/reduce.h:
/// kBlockedMaxParts floats).
constexpr std::size_t kMemoryScratchBytes = 16 + 4 * 1024;

/// The device twin of quant::Memory.
class CudaMemory {
 public:
  virtual ~CudaMemory() = default;
  /// Canonical spec string, identical to the CPU twin's.
  virtual std::string spec() const = 0;
  virtual bool needs_residual() const { return false; }
  virtual bool needs_momentum() const { return false; }
  virtual bool needs_scratch() const { return false; }
  /// False when update() ignores the decoded vector.
  virtual bool needs_decoded() const { return true; }
  /// True when compensate is a copy and update does nothing ("none"): encode the gradient.
  virtual bool passthrough() const { return false; }
  /// True when this memory is exactly "x = g + e; e = x - decoded", which CudaCodec::encode
  /// fuses into its own kernel through d_residual.
  virtual bool fusable_residual() const { return false; }
  /// d_compensated[0, n) = the vector to encode (may alias d_grad).
  virtual Status compensate(const float* d_grad, float* d_compensated, std::size_t n, CudaMemoryState* state,
                            cudaStream_t stream) const = 0;
  /// Updates the state after d_compensated was encoded and the receiver sees d_decoded.
  virtual Status update(const float* d_compensated, const float* d_decoded, std::size_t n,
                        CudaMemoryState* state, cudaStream_t stream) const = 0;
};

/// One step of "memory + codec" on the device: compensate, encode, (decode, update).
/// When memory.fusable_residual() the whole step is the codec's single fused encode;
/// otherwise it runs compensate -> encode -> decode -> update with two n-float
/// temporaries taken from the workspace (after a region that serves the codec's encode
/// and then its decode_own: max of both sizes). Two-phase workspace like CudaCodec::encode.
Status encode_with_memory(const CudaMemory& memory, const CudaCodec& codec, const float* d_grad, std::size_t n,
                          const SeedContext& ctx, CudaMemoryState* state, std::uint8_t* d_out,
                          std::size_t out_capacity, std::uint64_t* d_message_bytes, void* d_workspace,
                          std::size_t* workspace_bytes, cudaStream_t stream);

/// Builds the CUDA twin from the same spec string as make_codec ("qsgd:bits=4,bucket=512"):
/// parameters are parsed and validated with the CPU registry entry's declarations, so a
/// spec means the same on both sides. Throws SpecError for a bad spec or a codec without
/// a CUDA twin (naming the codecs that have one).
std::unique_ptr<CudaCodec> make_cuda_codec(const std::string& spec);
/// Same for memories ("ef", "none", "dgc:momentum=0.9").
std::unique_ptr<CudaMemory> make_cuda_memory(const std::string& spec);
/// Names of codecs / memories that have a CUDA twin, in registry order.
std::vector<std::string> cuda_codec_names();
std::vector<std::string> cuda_memory_names();

}  // namespace gradzip::quant::cuda
