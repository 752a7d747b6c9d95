// PowerSgdTensors (comm/powersgd_tensors.h): the plans, the packing of one model's p, q
// and dense values, the workers' states and their checkpoint image.
#include "comm/powersgd_tensors.h"

#include <cstring>

#include <fmt/format.h>

#include "comm/status_check.h"
#include "quant/aggregation.h"
#include "quant/codec.h"
#include "quant/wire.h"

namespace gradzip::comm {
namespace {

void check(const quant::Status& st, const char* what, std::size_t tensor, std::uint64_t step) {
  check_status(st, what, "tensor", tensor, step);
}

[[noreturn]] void bad_state(const std::string& why) {
  throw CommError(CommError::Kind::kInvalidArgument, "PowerSGD state: " + why);
}

}  // namespace

PowerSgdTensors::PowerSgdTensors(const ModelSignature& signature, const std::string& codec_spec, std::uint64_t seed,
                                 bool with_state)
    : seed_(seed) {
  const quant::PowerSgdConfig cfg = quant::parse_powersgd_spec(codec_spec);
  std::uint64_t offset = 0;
  for (std::size_t t = 0; t < signature.tensors.size(); ++t) {
    const TensorInfo& info = signature.tensors[t];
    Tensor pt;
    pt.offset = offset;
    pt.numel = info.numel;
    const std::vector<std::int64_t> shape = info.shape.empty() ? std::vector<std::int64_t>{1} : info.shape;
    check(quant::plan_powersgd(shape, cfg, &pt.plan), "PowerSGD plan", t, 0);
    if (pt.plan.compressed) {
      if (with_state) pt.state = std::make_unique<quant::PowerSgdState>(pt.plan, seed, static_cast<std::uint32_t>(t));
      p_floats_ += pt.plan.rows * pt.plan.rank;
      q_floats_ += pt.plan.cols * pt.plan.rank;
      ++compressed_;
    } else {
      dense_floats_ += pt.numel;
    }
    tensors_.push_back(std::move(pt));
    offset += info.numel;
  }
}

template <typename F>
void PowerSgdTensors::each_state(F f) {
  std::size_t p_at = 0, q_at = 0;
  for (std::size_t t = 0; t < tensors_.size(); ++t) {
    Tensor& x = tensors_[t];
    if (!x.state) continue;
    f(t, x, p_at, q_at);
    p_at += x.state->p_numel();
    q_at += x.state->q_numel();
  }
}

void PowerSgdTensors::compute_p(const float* grad, float* p, std::uint64_t step) {
  each_state([&](std::size_t t, Tensor& x, std::size_t p_at, std::size_t) {
    check(x.state->compute_p(grad + x.offset, p + p_at), "PowerSGD p", t, step);
  });
}

void PowerSgdTensors::set_reduced_p(const float* p_reduced, std::uint64_t step) {
  each_state([&](std::size_t t, Tensor& x, std::size_t p_at, std::size_t) {
    check(x.state->set_reduced_p(p_reduced + p_at), "PowerSGD p", t, step);
  });
}

void PowerSgdTensors::compute_q(float* q, std::uint64_t step) {
  each_state([&](std::size_t t, Tensor& x, std::size_t, std::size_t q_at) {
    check(x.state->compute_q(q + q_at), "PowerSGD q", t, step);
  });
}

void PowerSgdTensors::finish(const float* q_mean, float* grad, std::uint64_t step) {
  each_state([&](std::size_t t, Tensor& x, std::size_t, std::size_t q_at) {
    check(x.state->set_reduced_q(q_mean + q_at), "PowerSGD q", t, step);
    check(x.state->finish(grad + x.offset), "PowerSGD finish", t, step);
  });
}

void PowerSgdTensors::gather_dense(const float* grad, float* dense) const {
  for (const Tensor& x : tensors_) {
    if (x.plan.compressed) continue;
    std::memcpy(dense, grad + x.offset, x.numel * sizeof(float));
    dense += x.numel;
  }
}

void PowerSgdTensors::scatter_dense(const float* dense_sum, float scale, float* grad) const {
  for (const Tensor& x : tensors_) {
    if (x.plan.compressed) continue;
    float* g = grad + x.offset;
    for (std::size_t i = 0; i < x.numel; ++i) g[i] = dense_sum[i] * scale;
    dense_sum += x.numel;
  }
}

quant::Status PowerSgdTensors::rebuild(const float* p_sum, const float* q_mean, float* grad) {
  if (!quant::all_finite(p_sum, p_floats_) || !quant::all_finite(q_mean, q_floats_)) {
    return quant::Status(quant::Errc::kNonFiniteInput, "powersgd: the reduced p or q holds NaN or Inf");
  }
  for (const Tensor& x : tensors_) {
    if (!x.plan.compressed) continue;
    const std::size_t pn = x.plan.rows * x.plan.rank;
    scratch_.assign(p_sum, p_sum + pn);
    quant::powersgd_orthonormalise(scratch_.data(), x.plan.rows, x.plan.rank);  // as PowerSgdState::set_reduced_p
    quant::powersgd_product(scratch_.data(), q_mean, x.plan.rows, x.plan.cols, x.plan.rank, grad + x.offset);
    p_sum += pn;
    q_mean += x.plan.cols * x.plan.rank;
  }
  return quant::Status::Ok();
}

void PowerSgdTensors::save(std::vector<std::uint8_t>* out) const {
  const std::size_t at = out->size();
  out->resize(at + 4);
  quant::store_le<std::uint32_t>(out->data() + at, static_cast<std::uint32_t>(compressed_));
  for (const Tensor& x : tensors_) {
    if (!x.state) continue;
    const quant::Status st = x.state->state(out);
    if (!st.ok()) bad_state(st.to_string());
  }
}

void PowerSgdTensors::restore(const std::uint8_t* data, std::size_t size) {
  if (size < 4 || quant::load_le<std::uint32_t>(data) != compressed_) {
    bad_state(fmt::format("saved for {} tensors, this run compresses {}",
                          size < 4 ? 0 : quant::load_le<std::uint32_t>(data), compressed_));
  }
  data += 4;
  size -= 4;
  // Restored into fresh states first, so a bad image changes nothing.
  std::vector<std::unique_ptr<quant::PowerSgdState>> fresh;
  for (std::size_t t = 0; t < tensors_.size(); ++t) {
    const Tensor& x = tensors_[t];
    if (!x.state) continue;
    fresh.push_back(std::make_unique<quant::PowerSgdState>(x.plan, seed_, static_cast<std::uint32_t>(t)));
    std::size_t used = 0;
    const quant::Status st = fresh.back()->restore(data, size, &used);
    if (!st.ok()) bad_state(fmt::format("tensor {}: {}", t, st.to_string()));
    data += used;
    size -= used;
  }
  if (size != 0) bad_state(fmt::format("{} bytes left over", size));
  std::size_t k = 0;
  for (Tensor& x : tensors_) {
    if (x.state) x.state = std::move(fresh[k++]);
  }
}

}  // namespace gradzip::comm
