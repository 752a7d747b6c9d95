// CUDA twin of quant/codecs/dgc.cc (Lin, Han, Mao, Wang & Dally 2018, Deep Gradient
// Compression, ICLR): threshold from a Philox sample, re-adjusted until the kept count is
// within [0.8, 1.25] x k, exact top-k fallback, warm-up density schedule. dgc.cc's
// numbered rule defines the bytes; this file follows it step by step:
//
//   1. k (warm-up schedule), m and the rank sequence r_0, min(m, 2 r_0), ... (at most
//      kMaxLowerings + 1 scans, stopping after r == m) are data-independent: computed on
//      the host with dgc.cc's double arithmetic.
//   3. dgc_sample_kernel: sample j is p_j = r_j * n_hi + ((r_j * n_lo) >> 32) with r_j
//      word j % 4 of Philox block j / 4 of RandomStream::kSampling (one block per thread);
//      it gathers x[p_j] (x = g [+ e]) into a float array.
//   4. tau = the r-th largest abs_key of the samples: the radix select of
//      quant/cuda_sparse.cuh run over the sample array (k = r).
//   5. dgc_count_kernel counts |C| = #{i : abs_key(x_i) >= tau}; dgc_decide_kernel applies
//      5a-5d to the count. Whether another scan is needed is only known on the device, so
//      every planned scan is enqueued and the kernels of scans after the decision return
//      at once (a done flag in the workspace): no host synchronisation.
//   The outcome is one of two sets, both expressible as a selection state (T, take):
//      5b (count in band): C itself, i.e. T = tau with every tie kept;
//      5a, 5c, 5d-exhausted: the exact top-k of x (5c: the top-k of C equals it, dgc.cc).
//   So the final stage is: radix select of the k largest over x (skipped on the device
//   when 5b was reached), a one-thread fix-up that installs T = tau for 5b, then the
//   chunked compaction and the sparse block writer shared with topk/threshold. The step
//   field of the payload rides in the host-built message prefix (MessagePrefix::lead).
//   n <= kMinSamples or k == n: exact top-k directly (step 3's first sentence).
//
// Fused error feedback as in topk.cu: every pass reads p = g + e; the compaction stores p
// into the residual and the value pass writes p - C(p) for the kept elements.
//
// Workspace: sized for the largest k of the warm-up schedule (stage 0) so one allocation
// serves every step; the sample array holds m floats.
#include <algorithm>
#include <cmath>

#include "quant/codecs/dgc.h"
#include "quant/cuda_registry.h"
#include "quant/cuda_sparse.cuh"
#include "quant/sparse.h"

namespace gradzip::quant::cuda {
namespace {

using sparse::SparseWorkspace;
using sparse::Values;

using dgc::kMaxLowerings;
using dgc::kMinSamples;

/// Decision state of the sampled selection (device).
struct DgcState {
  std::uint32_t done;        ///< 1 once an outcome is fixed: later scans return at once
  std::uint32_t skip_exact;  ///< 1 unless the outcome is the exact top-k of x
  std::uint32_t tau;         ///< outcome 5b: keep abs_key >= tau
  std::uint32_t pad;
  unsigned long long count;  ///< |C| of the current scan
};

/// Workspace carve-up: main selection (n, c_max), sample selection, samples, state.
struct DgcWorkspace {
  SparseWorkspace sel;
  SparseWorkspace sample_sel;
  float* samples = nullptr;
  DgcState* state = nullptr;
  std::size_t bytes = 0;
  static DgcWorkspace layout(void* base, std::size_t n, std::size_t c_max, std::size_t m) {
    DgcWorkspace w;
    auto* p = static_cast<std::uint8_t*>(base);
    const auto at = [p](std::size_t off) { return p == nullptr ? nullptr : p + off; };
    w.sel = SparseWorkspace::layout(p, n, c_max);
    std::size_t off = w.sel.bytes;
    w.sample_sel = SparseWorkspace::layout(at(off), 0, 0);  // state + histogram only are used
    off += w.sample_sel.bytes;
    w.samples = reinterpret_cast<float*>(at(off));
    off += (4 * m + 255) / 256 * 256;
    w.state = reinterpret_cast<DgcState*>(at(off));
    off += 256;
    w.bytes = off;
    return w;
  }
};

__global__ void dgc_state_init_kernel(DgcState* state) { *state = DgcState{0, 1, 0, 0, 0}; }

/// Step 3: samples[j] = x[p_j] for j < m, one Philox block (4 samples) per thread.
template <bool kEf>
__global__ void __launch_bounds__(kBlockThreads)
    dgc_sample_kernel(const float* g, const float* r, std::uint64_t n, std::uint64_t m, SeedContext ctx,
                      float* samples) {
  const std::uint64_t n_hi = n >> 32, n_lo = n & 0xFFFFFFFFu;
  const std::uint64_t blocks = (m + 3) / 4;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::uint64_t b = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks; b += stride) {
    const Philox4x32 rb = random_block(ctx, RandomStream::kSampling, b);
    for (std::uint64_t w = 0; w < 4; ++w) {
      const std::uint64_t j = 4 * b + w;
      if (j >= m) break;
      const std::uint64_t rj = rb.v[w];
      const std::uint64_t pos = rj * n_hi + ((rj * n_lo) >> 32);
      samples[j] = kEf ? g[pos] + r[pos] : g[pos];  // p = g + e, as Memory "ef" compensate
    }
  }
}

/// Step 5 (count only): |C| for tau = the sample selection's threshold.
template <bool kEf>
__global__ void __launch_bounds__(kBlockThreads)
    dgc_count_kernel(const float* g, const float* r, std::size_t n, const sparse::SelectState* sample_state,
                     DgcState* state) {
  if (state->done != 0) return;
  const std::uint32_t tau = sample_state->threshold;
  unsigned long long c = 0;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float p = kEf ? g[i] + r[i] : g[i];
    c += (__float_as_uint(p) & 0x7FFFFFFFu) >= tau ? 1u : 0u;
  }
  for (int offset = 16; offset > 0; offset /= 2) c += __shfl_xor_sync(0xFFFFFFFFu, c, offset);
  if ((threadIdx.x & 31) == 0 && c != 0) atomicAdd(&state->count, c);
}

/// Steps 5a-5d for one scan (one thread). `last`: no lowering is left (the rank reached m
/// or kMaxLowerings lowerings were made), so "too few" falls back to the exact top-k.
__global__ void dgc_decide_kernel(DgcState* state, const sparse::SelectState* sample_state, std::uint64_t k,
                                  bool last) {
  if (state->done != 0) return;
  const std::uint64_t c = state->count;
  state->count = 0;
  if (c > 4 * k) {                      // 5a: the scan would have stopped early
    state->skip_exact = 0;
  } else if (4 * k <= 5 * c && 4 * c <= 5 * k) {  // 5b: keep C
    state->tau = sample_state->threshold;
    state->skip_exact = 1;
  } else if (4 * c > 5 * k) {           // 5c: top-k of C == top-k of x
    state->skip_exact = 0;
  } else if (last) {                    // 5d exhausted
    state->skip_exact = 0;
  } else {
    return;                             // 5d: lower the threshold, scan again
  }
  state->done = 1;
}

/// Outcome 5b: the main selection keeps every key >= tau (after the skipped radix passes).
__global__ void dgc_finalize_kernel(const DgcState* state, sparse::SelectState* sel) {
  if (state->skip_exact == 0) return;  // exact top-k: the radix passes set T and take
  sel->threshold = state->tau;
  sel->take = ~std::uint64_t{0};
  sel->all_ties = 1;
}

class DgcCudaCodec final : public CudaCodec {
 public:
  DgcCudaCodec(dgc::Settings s, std::string spec, std::vector<std::uint8_t> params)
      : s_(s), fmt_(static_cast<Values>(s.values)), spec_(std::move(spec)), params_(std::move(params)) {}

  CodecId id() const override { return CodecId::kDgc; }
  std::string spec() const override { return spec_; }
  bool exact_size() const override { return false; }
  std::size_t max_encoded_bytes(std::size_t n) const override {
    return kHeaderBytes + params_.size() + dgc::kStepBytes + sparse_block_max_bytes(n, c_max(n), s_.values);
  }

  Status encode(const float* d_grad, float* d_residual, std::size_t n, const SeedContext& ctx, std::uint8_t* d_out,
                std::size_t out_capacity, std::uint64_t* d_message_bytes, void* d_workspace,
                std::size_t* workspace_bytes, cudaStream_t stream) const override {
    const std::uint64_t m = sample_count(n);
    bool query = false;
    GZ_RETURN_IF_ERROR(check_encode_args(d_grad, d_residual, n, ctx, d_out, out_capacity, d_workspace,
                                         workspace_bytes, DgcWorkspace::layout(nullptr, n, c_max(n), m).bytes,
                                         &query));
    if (query) return Status::Ok();
    if (ctx.step >= (std::uint64_t{1} << 32)) return Status(Errc::kInvalidArgument, "step must be < 2^32 (Philox layout)");
    const DgcWorkspace ws = DgcWorkspace::layout(d_workspace, n, c_max(n), m);
    const std::uint64_t k = count_for_ratio(n, dgc::density(s_.ratio, s_.warmup_steps, ctx.step));
    std::uint8_t lead[dgc::kStepBytes];
    store_le<std::uint64_t>(lead, ctx.step);
    MessagePrefix prefix;
    GZ_RETURN_IF_ERROR(
        make_prefix(CodecId::kDgc, 0, n, params_.data(), params_.size(), 0, &prefix, lead, dgc::kStepBytes));
    GZ_RETURN_IF_ERROR(clear_device_status(d_out, stream));
    GZ_RETURN_IF_ERROR(sparse::launch_select_init(ws.sel, k, stream));
    if (n <= kMinSamples || k >= n) {
      // Step 3's first case: exact top-k.
      if (k > 0) GZ_RETURN_IF_ERROR(sparse::launch_topk_select(d_grad, d_residual, n, k, ws.sel, stream));
      return sparse::launch_sparse_emit(d_grad, d_residual, n, k, fmt_, ws.sel, d_out, prefix, d_message_bytes,
                                        stream);
    }
    // Step 4's initial rank and the rank of every later scan (dgc.cc, same doubles).
    std::uint64_t rank = dgc::initial_rank(m, k, n);
    std::uint64_t ranks[kMaxLowerings + 1];
    int scans = 0;
    for (int lowering = 0; lowering <= kMaxLowerings; ++lowering) {
      ranks[scans++] = rank;
      if (rank == m) break;
      rank = std::min(m, 2 * rank);
    }
    dgc_state_init_kernel<<<1, 1, 0, stream>>>(ws.state);
    GZ_CUDA_CHECK_LAUNCH();
    const unsigned sample_grid = grid_for((m + 3) / 4, 1);
    const unsigned scan_grid = grid_for(n, 16);
    if (d_residual != nullptr) {
      dgc_sample_kernel<true><<<sample_grid, kBlockThreads, 0, stream>>>(d_grad, d_residual, n, m, ctx, ws.samples);
    } else {
      dgc_sample_kernel<false><<<sample_grid, kBlockThreads, 0, stream>>>(d_grad, nullptr, n, m, ctx, ws.samples);
    }
    GZ_CUDA_CHECK_LAUNCH();
    const std::uint32_t* d_done = &ws.state->done;
    for (int s = 0; s < scans; ++s) {
      GZ_RETURN_IF_ERROR(sparse::launch_select_init(ws.sample_sel, ranks[s], stream));
      GZ_RETURN_IF_ERROR(sparse::launch_radix_select(ws.samples, nullptr, m, ws.sample_sel, d_done, stream));
      if (d_residual != nullptr) {
        dgc_count_kernel<true><<<scan_grid, kBlockThreads, 0, stream>>>(d_grad, d_residual, n, ws.sample_sel.state,
                                                                        ws.state);
      } else {
        dgc_count_kernel<false><<<scan_grid, kBlockThreads, 0, stream>>>(d_grad, nullptr, n, ws.sample_sel.state,
                                                                         ws.state);
      }
      GZ_CUDA_CHECK_LAUNCH();
      dgc_decide_kernel<<<1, 1, 0, stream>>>(ws.state, ws.sample_sel.state, k, s == scans - 1);
      GZ_CUDA_CHECK_LAUNCH();
    }
    // Exact top-k of x unless the device chose 5b; then the compaction of either set.
    GZ_RETURN_IF_ERROR(sparse::launch_radix_select(d_grad, d_residual, n, ws.sel, &ws.state->skip_exact, stream));
    dgc_finalize_kernel<<<1, 1, 0, stream>>>(ws.state, ws.sel.state);
    GZ_CUDA_CHECK_LAUNCH();
    GZ_RETURN_IF_ERROR(sparse::launch_select_compact(d_grad, d_residual, n, ws.sel, stream));
    const std::uint64_t c_bound = std::min<std::uint64_t>(n, (5 * k) / 4);
    return sparse::launch_sparse_emit(d_grad, d_residual, n, c_bound, fmt_, ws.sel, d_out, prefix, d_message_bytes,
                                      stream);
  }

 protected:
  Status decode_payload(const MessageView* m, const std::uint8_t* d_msg, std::size_t n, float* d_out, float scale,
                        bool accumulate, cudaStream_t stream) const override {
    sparse::SparseDecodePlan plan;
    plan.fmt = fmt_;
    plan.count = c_max(n);  // bound over the schedule; decode_own reads the count on the device
    std::size_t params_bytes = params_.size();
    if (m != nullptr) {
      dgc::Parsed msg;
      GZ_RETURN_IF_ERROR(dgc::parse_message(*m, &msg));
      sparse::plan_validated_block(msg.s.values, msg.view, &plan);
      params_bytes = m->params_bytes;
    }
    // The sparse block follows the 8-byte step field.
    const std::uint8_t* d_block = d_msg + kHeaderBytes + params_bytes + dgc::kStepBytes;
    return sparse::launch_sparse_decode(plan, d_msg, d_block, n, d_out, scale, accumulate, stream);
  }

 private:
  /// Largest kept count over the schedule (dgc.cc max_payload_bytes).
  std::uint64_t c_max(std::uint64_t n) const { return dgc::max_kept(s_, n); }
  /// Step 3's sample count m (0 when the exact path is always taken).
  std::uint64_t sample_count(std::uint64_t n) const { return n <= kMinSamples ? 0 : dgc::sample_count(s_.sample, n); }

  dgc::Settings s_;
  Values fmt_;
  std::string spec_;
  std::vector<std::uint8_t> params_;
};

std::unique_ptr<CudaCodec> make_dgc(const Params& p, const Codec& cpu) {
  return std::make_unique<DgcCudaCodec>(dgc::from_params(p), cpu.spec(), cpu_params_block(cpu));
}

}  // namespace

const CudaCodecEntry& cuda_dgc_entry() {
  static const CudaCodecEntry entry{"dgc", &make_dgc};
  return entry;
}

}  // namespace gradzip::quant::cuda
