// A least-squares problem for comm tests (no torch): worker w holds rows A_w (m x d) and
// targets b_w = A_w x* + noise; its loss is f_w(x) = ||A_w x - b_w||^2 / (2m), gradient
// A_w^T (A_w x - b_w) / m. The model is x split into tensors of uneven sizes so that
// placement strategies have something to balance.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "comm/layout.h"
#include "comm/optimizer.h"
#include "comm/transport.h"
#include "quant/registry.h"

namespace gradzip::comm::testing {

inline ModelSignature lsq_signature(const std::vector<std::uint64_t>& sizes = {37, 5, 100, 1, 64, 13}) {
  ModelSignature s;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    s.tensors.push_back({"layer" + std::to_string(i) + ".weight", {static_cast<std::int64_t>(sizes[i])}, sizes[i]});
  }
  s.compressor_spec = "identity";
  return s;
}

/// The starting point every LSQ test worker uses (small, uneven values).
inline std::vector<float> initial_params(std::size_t d) {
  std::vector<float> x(d);
  for (std::size_t i = 0; i < d; ++i) x[i] = 0.01f * static_cast<float>(static_cast<int>(i % 13) - 6);
  return x;
}

/// An optimizer that exercises every part of comm/optimizer.h: Nesterov momentum, weight
/// decay, cosine schedule with warm-up over 10 steps.
inline OptimizerOptions test_optimizer() {
  OptimizerOptions o;
  o.lr = 0.3;
  o.momentum = 0.9;
  o.nesterov = true;
  o.weight_decay = 1e-3;
  o.schedule = LrSchedule::kCosine;
  o.total_steps = 10;
  o.warmup_steps = 2;
  return o;
}

struct LsqProblem {
  std::size_t d = 0, m = 0;
  std::vector<float> a, b;  // row-major m x d, m

  LsqProblem(std::size_t dim, std::size_t rows, std::uint32_t worker, std::uint64_t seed = 7) : d(dim), m(rows) {
    std::mt19937_64 truth(seed);  // x* is shared by all workers
    std::normal_distribution<float> n01(0.0f, 1.0f);
    std::vector<float> x_star(d);
    for (auto& v : x_star) v = n01(truth);
    std::mt19937_64 rng(seed * 1000003 + worker);
    a.resize(m * d);
    b.resize(m);
    for (auto& v : a) v = n01(rng) / std::sqrt(static_cast<float>(d));
    for (std::size_t i = 0; i < m; ++i) {
      float dot = 0.0f;
      for (std::size_t j = 0; j < d; ++j) dot += a[i * d + j] * x_star[j];
      b[i] = dot + 0.01f * n01(rng);
    }
  }
  /// grad[0, d) = A^T (A x - b) / m; returns the loss ||Ax - b||^2 / (2m).
  double gradient(const float* x, float* grad) const {
    std::vector<float> r(m);
    double loss = 0.0;
    for (std::size_t i = 0; i < m; ++i) {
      float dot = 0.0f;
      for (std::size_t j = 0; j < d; ++j) dot += a[i * d + j] * x[j];
      r[i] = dot - b[i];
      loss += 0.5 * r[i] * r[i] / static_cast<double>(m);
    }
    for (std::size_t j = 0; j < d; ++j) grad[j] = 0.0f;
    for (std::size_t i = 0; i < m; ++i) {
      for (std::size_t j = 0; j < d; ++j) grad[j] += a[i * d + j] * r[i] / static_cast<float>(m);
    }
    return loss;
  }
};

/// The parameters every lsq worker starts from (worker 0 initializes the shards with them).
inline std::vector<float> lsq_initial_params(std::size_t d) { return initial_params(d); }

/// Single-process reference of a sync PS run: `steps` optimizer steps on the mean of the
/// gradients of workers 0..workers-1 (summed in rank order), from lsq_initial_params.
inline std::vector<float> sync_reference(const ModelSignature& sig, std::uint32_t workers, std::uint64_t steps,
                                         const OptimizerOptions& o, std::size_t rows = 24) {
  const std::size_t d = sig.total_numel();
  std::vector<float> x = lsq_initial_params(d), mom(d, 0.0f), sum(d), g(d);
  std::vector<LsqProblem> probs;
  for (std::uint32_t w = 0; w < workers; ++w) probs.emplace_back(d, rows, w);
  const float inv = 1.0f / static_cast<float>(workers);
  for (std::uint64_t step = 0; step < steps; ++step) {
    std::fill(sum.begin(), sum.end(), 0.0f);
    for (auto& p : probs) {
      p.gradient(x.data(), g.data());
      for (std::size_t i = 0; i < d; ++i) sum[i] += g[i];
    }
    for (auto& v : sum) v *= inv;
    sgd_step(o, step, x.data(), sum.data(), mom.data(), d);
  }
  return x;
}

/// Encodes every bucket of `grad` the way a worker does: error feedback + uplink codec
/// for compressed buckets, identity for the others. `states` holds one MemoryState per
/// bucket (resized here).
struct BucketEncoder {
  quant::Compressor compressor;
  std::unique_ptr<quant::Codec> identity = quant::make_codec("identity");
  std::vector<quant::MemoryState> states;

  explicit BucketEncoder(const std::string& spec) : compressor(quant::make_compressor(spec)) {}

  std::vector<std::vector<std::uint8_t>> encode(const Layout& layout, const float* grad, std::uint64_t step,
                                                std::uint32_t worker, std::uint64_t seed = 1) {
    states.resize(layout.buckets.size());
    std::vector<std::vector<std::uint8_t>> out;
    for (const auto& b : layout.buckets) {
      const quant::SeedContext ctx{seed, step, worker, b.id};
      if (!b.compressed) {
        out.push_back(identity->encode(grad + b.offset, b.numel, ctx));
        continue;
      }
      std::vector<std::uint8_t> msg(compressor.codec->max_encoded_bytes(b.numel));
      std::size_t bytes = 0;
      const quant::Status st = compressor.memory->encode_step(*compressor.codec, grad + b.offset, b.numel, ctx,
                                                              &states[b.id], msg.data(), msg.size(), &bytes);
      if (!st.ok()) throw quant::QuantError(st);
      msg.resize(bytes);
      out.push_back(std::move(msg));
    }
    return out;
  }
};

}  // namespace gradzip::comm::testing
