// CollectiveTransport's aggregation-only modes (comm/collective_transport.h), driving the
// arithmetic of quant/homomorphic.h (THC) and quant/powersgd.h (PowerSGD). The worker
// pushes identity (fp32) messages in these modes; compression happens here, where the
// ranks can agree on something between encode and decode.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "comm/collective_transport.h"
#include "comm/powersgd_tensors.h"
#include "comm/status_check.h"
#include "quant/aggregation.h"
#include "quant/rotation.h"
#include "quant/wire.h"

namespace gradzip::comm {
namespace {

void check(const quant::Status& st, const char* what, std::uint32_t bucket, std::uint64_t step) {
  check_status(st, what, "bucket", bucket, step);
}

template <typename T>
void thc_round(const float* x, std::size_t n, float scale, std::int32_t levels, const quant::SeedContext& ctx,
               Collective& coll, DType type, std::vector<std::uint8_t>* codes, std::vector<std::uint8_t>* own,
               float weight, float* out, float* own_decoded, std::uint32_t bucket, std::uint64_t step) {
  codes->resize(n * sizeof(T));
  T* c = reinterpret_cast<T*>(codes->data());
  check(quant::homomorphic::encode_local<T>(x, n, scale, levels, ctx, c), "THC encode", bucket, step);
  if (own_decoded != nullptr) own->assign(codes->begin(), codes->end());
  coll.allreduce(c, n, type, ReduceOp::kSum);  // integer sum: exact, any order
  check(quant::homomorphic::decode_sum<T>(c, n, scale, levels, weight, out), "THC decode", bucket, step);
  if (own_decoded != nullptr) {
    check(quant::homomorphic::decode_sum<T>(reinterpret_cast<const T*>(own->data()), n, scale, levels, 1.0f,
                                            own_decoded),
          "THC decode (own)", bucket, step);
  }
}

}  // namespace

/// The state of the aggregation-only modes (THC, PowerSGD) and their scratch buffers.
struct CollectiveTransport::AggregationOnly {
  quant::homomorphic::Config thc;
  bool thc_ef = false;
  DType thc_sum_type = DType::kInt32;
  std::vector<float> thc_residual, compensated, out, own_decoded;
  std::vector<std::uint8_t> codes, own_codes;
  std::unique_ptr<PowerSgdTensors> power;
  std::vector<float> step_grad, reduce;
  std::size_t power_buckets_seen = 0;
};

void CollectiveTransport::setup_aggregation_only(const ModelSignature& signature) {
  algo_ = std::make_shared<AggregationOnly>();
  AggregationOnly& a = *algo_;
  const std::string codec = quant::parse_compressor_spec(o_.aggregation_spec).codec;
  const bool ef = quant::parse_compressor_spec(o_.aggregation_spec).memory != "none";
  if (o_.mode == CollectiveMode::kHomomorphic) {
    a.thc = quant::parse_thc_spec(codec);
    a.thc_ef = ef;
    if (ef) a.thc_residual.assign(signature.total_numel(), 0.0f);
    const std::size_t width = quant::homomorphic::sum_bytes_per_element(a.thc.levels, coll_->size());
    if (width == 0) {
      throw std::invalid_argument(fmt::format("thc: {} levels over {} ranks overflow an int32 sum", a.thc.levels,
                                              coll_->size()));
    }
    a.thc_sum_type = width == 1 ? DType::kInt8 : width == 2 ? DType::kInt16 : DType::kInt32;
    return;
  }
  // PowerSGD: one state per compressed tensor, dense tensors reduced as they are.
  a.power = std::make_unique<PowerSgdTensors>(signature, codec, o_.seed, /*with_state=*/true);
  a.step_grad.assign(signature.total_numel(), 0.0f);
}

void CollectiveTransport::push_homomorphic(const Job& job, const Bucket& b, float* g) {
  AggregationOnly& a = *algo_;
  const std::uint32_t R = coll_->size();
  const std::size_t n = b.numel;
  float* x = g;
  if (a.thc_ef) {  // compensate: x = g + e
    float* e = a.thc_residual.data() + b.offset;
    for (std::size_t i = 0; i < n; ++i) x[i] += e[i];
    a.compensated.assign(x, x + n);
  }
  const quant::SeedContext shared{o_.seed, job.step, 0, b.id};  // signs agree on every rank
  const quant::SeedContext own{o_.seed, job.step, coll_->rank(), b.id};
  if (a.thc.rotate) check(quant::rotate(x, n, a.thc.block, shared), "rotation", b.id, job.step);
  float scale = 0;
  check(quant::homomorphic::local_max_abs(x, n, &scale), "THC scale", b.id, job.step);
  coll_->allreduce(&scale, 1, DType::kFloat32, ReduceOp::kMax);  // the agreed scale
  a.out.resize(n);
  a.own_decoded.resize(n);
  float* own_out = a.thc_ef ? a.own_decoded.data() : nullptr;
  const float weight = 1.0f / static_cast<float>(R);
  switch (a.thc_sum_type) {
    case DType::kInt8:
      thc_round<std::int8_t>(x, n, scale, a.thc.levels, own, *coll_, DType::kInt8, &a.codes, &a.own_codes, weight,
                             a.out.data(), own_out, b.id, job.step);
      break;
    case DType::kInt16:
      thc_round<std::int16_t>(x, n, scale, a.thc.levels, own, *coll_, DType::kInt16, &a.codes, &a.own_codes, weight,
                              a.out.data(), own_out, b.id, job.step);
      break;
    default:
      thc_round<std::int32_t>(x, n, scale, a.thc.levels, own, *coll_, DType::kInt32, &a.codes, &a.own_codes, weight,
                              a.out.data(), own_out, b.id, job.step);
  }
  if (a.thc.rotate) {
    check(quant::unrotate(a.out.data(), n, a.thc.block, shared), "rotation", b.id, job.step);
    if (own_out) check(quant::unrotate(own_out, n, a.thc.block, shared), "rotation", b.id, job.step);
  }
  if (a.thc_ef) {  // e = compensated - what this rank contributed
    float* e = a.thc_residual.data() + b.offset;
    for (std::size_t i = 0; i < n; ++i) e[i] = a.compensated[i] - a.own_decoded[i];
  }
  mean_sgd_step(o_.optimizer, job.step, params_.data() + b.offset, a.out.data(), momentum_.data() + b.offset, n, 1);
}

void CollectiveTransport::push_powersgd(const Job& job, const Bucket& b, const float* g) {
  AggregationOnly& a = *algo_;
  // Buckets of a step are gathered; the last one runs the step's two allreduces over
  // every tensor at once (a tensor may span buckets).
  std::memcpy(a.step_grad.data() + b.offset, g, b.numel * sizeof(float));
  if (++a.power_buckets_seen < layout_.buckets.size()) return;
  a.power_buckets_seen = 0;
  const std::uint32_t R = coll_->size();
  const float inv = R > 1 ? 1.0f / static_cast<float>(R) : 1.0f;
  PowerSgdTensors& power = *a.power;
  // Allreduce 1: every compressed tensor's p, then every dense tensor's values.
  a.reduce.assign(power.p_floats() + power.dense_floats(), 0.0f);
  power.compute_p(a.step_grad.data(), a.reduce.data(), job.step);
  power.gather_dense(a.step_grad.data(), a.reduce.data() + power.p_floats());
  coll_->allreduce(a.reduce.data(), a.reduce.size(), DType::kFloat32, ReduceOp::kSum);
  power.set_reduced_p(a.reduce.data(), job.step);
  power.scatter_dense(a.reduce.data() + power.p_floats(), inv, a.step_grad.data());  // the mean, as the shard's
  // Allreduce 2: every compressed tensor's q, averaged.
  if (power.q_floats() > 0) {
    a.reduce.assign(power.q_floats(), 0.0f);
    power.compute_q(a.reduce.data(), job.step);
    coll_->allreduce(a.reduce.data(), a.reduce.size(), DType::kFloat32, ReduceOp::kSum);
    for (float& v : a.reduce) v *= 1.0f / static_cast<float>(R);
    power.finish(a.reduce.data(), a.step_grad.data(), job.step);
  }
  for (const Bucket& each : layout_.buckets) {
    mean_sgd_step(o_.optimizer, job.step, params_.data() + each.offset, a.step_grad.data() + each.offset,
                  momentum_.data() + each.offset, each.numel, 1);
  }
}

}  // namespace gradzip::comm

namespace gradzip::comm {
namespace {

// The image of save_state (little-endian): u32 magic "GZAG", u32 version 1, u32 mode
// (collective_mode_name order: 2 homomorphic, 3 powersgd), then
//   homomorphic: u64 n, n fp32 error-feedback residual (n = 0 without "ef+")
//   powersgd:    the image of PowerSgdTensors::save (comm/powersgd_tensors.h): u32 t =
//                compressed tensors, t images of quant::PowerSgdState::state, tensor order.
constexpr std::uint32_t kStateMagic = 0x47415A47u;  // "GZAG"
constexpr std::uint32_t kStateVersion = 1;
constexpr std::size_t kStateHeader = 12;

template <typename T>
void append(std::vector<std::uint8_t>* out, T v) {
  out->resize(out->size() + sizeof(T));
  quant::store_le<T>(out->data() + out->size() - sizeof(T), v);
}

[[noreturn]] void bad_state(const std::string& why) {
  throw CommError(CommError::Kind::kInvalidArgument, "aggregation state: " + why);
}

}  // namespace

void CollectiveTransport::write_state(std::vector<std::uint8_t>* out) const {
  out->clear();
  if (!algo_) return;  // allreduce, allgather: nothing between steps
  const AggregationOnly& a = *algo_;
  if (a.power_buckets_seen != 0) bad_state("asked in the middle of a step");
  append<std::uint32_t>(out, kStateMagic);
  append<std::uint32_t>(out, kStateVersion);
  append<std::uint32_t>(out, static_cast<std::uint32_t>(o_.mode));
  if (o_.mode == CollectiveMode::kHomomorphic) {
    append<std::uint64_t>(out, a.thc_residual.size());
    for (float v : a.thc_residual) append<float>(out, v);
    return;
  }
  a.power->save(out);
}

void CollectiveTransport::read_state(const std::vector<std::uint8_t>& image) {
  if (!algo_) {
    if (!image.empty()) bad_state(fmt::format("{} bytes for --aggregation {}, which keeps none", image.size(),
                                              collective_mode_name(o_.mode)));
    return;
  }
  AggregationOnly& a = *algo_;
  const std::string mode = collective_mode_name(o_.mode);
  if (image.empty()) bad_state("the checkpoint holds none; --aggregation " + mode + " needs its compressor state");
  if (image.size() < kStateHeader || quant::load_le<std::uint32_t>(image.data()) != kStateMagic ||
      quant::load_le<std::uint32_t>(image.data() + 4) != kStateVersion) {
    bad_state("not an aggregation state image v1");
  }
  const auto saved_mode = quant::load_le<std::uint32_t>(image.data() + 8);
  if (saved_mode != static_cast<std::uint32_t>(o_.mode)) {
    bad_state(fmt::format("saved by another aggregation (mode {}), this run is --aggregation {}", saved_mode, mode));
  }
  const std::uint8_t* d = image.data() + kStateHeader;
  std::size_t left = image.size() - kStateHeader;
  if (o_.mode == CollectiveMode::kHomomorphic) {
    if (left < 8) bad_state("truncated");
    const auto n = quant::load_le<std::uint64_t>(d);
    if (n != a.thc_residual.size() || (left - 8) / 4 != n || (left - 8) % 4 != 0) {
      bad_state(fmt::format("a THC residual of {} values in {} bytes, this run keeps {}", n, left - 8,
                            a.thc_residual.size()));
    }
    for (std::uint64_t i = 0; i < n; ++i) a.thc_residual[i] = quant::load_le<float>(d + 8 + 4 * i);
    return;
  }
  try {
    a.power->restore(d, left);
  } catch (const CommError& e) {
    bad_state(e.what());
  }
}

std::vector<std::uint8_t> CollectiveTransport::save_state() {
  std::vector<std::uint8_t> image;
  wait(enqueue(Job::state_io(JobKind::kSaveState, &image)));
  return image;
}

void CollectiveTransport::restore_state(const std::vector<std::uint8_t>& image) {
  std::vector<std::uint8_t> copy = image;
  wait(enqueue(Job::state_io(JobKind::kRestoreState, &copy)));
}

}  // namespace gradzip::comm
