// PowerSGD over the parameter server (comm/powersgd_ps_transport.h, comm/shard_reduce.cc),
// in process: real Shards and RequestClients exchanging wire bytes, one thread per worker.
// The shard's parameters equal, bit for bit, a reference that drives PowerSgdTensors by
// hand (workers' sums in rank order, then the optimizer); a gradient of rank <= r comes
// through whole; both rounds' bytes are counted per direction as the header's formula
// says; the shard refuses bad reduce requests with typed errors, and refuses options it
// cannot run.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "comm/inproc.h"
#include "comm/optimizer.h"
#include "comm/powersgd_ps_transport.h"
#include "quant/registry.h"
#include "quant/wire.h"
#include "tests/comm/shard_harness.h"

namespace gradzip::comm {
namespace {

const std::string kSpec = "powersgd:rank=2,min_numel=16";

/// A 12 x 10 matrix (compressed at rank 2), its bias (dense) and a 3 x 2 x 2 x 2 conv
/// weight (24 elements, compressed: 2 * (3 + 8) < 24).
ModelSignature model() {
  ModelSignature s;
  s.tensors = {{"fc.weight", {12, 10}, 120}, {"fc.bias", {12}, 12}, {"conv.weight", {3, 2, 2, 2}, 24}};
  s.compressor_spec = "identity";
  return s;
}

/// Worker w's gradient at `step`: distinct, not low rank.
std::vector<float> gradient(std::size_t n, std::uint32_t w, std::uint64_t step) {
  std::vector<float> g(n);
  for (std::size_t i = 0; i < n; ++i) {
    g[i] = std::sin(0.37f * static_cast<float>(i * (w + 2)) + 0.11f * static_cast<float>(step)) + 0.05f * static_cast<float>(w);
  }
  return g;
}

struct PsRun {
  std::unique_ptr<InprocCluster> cluster;
  std::vector<std::vector<float>> pulled;  // per worker, after the last step
  std::vector<TrafficCounters> traffic;  // per worker: counted by the steps (connect's traffic taken off)
};

/// W workers as threads take `steps` steps of PowerSGD over one in-process shard, each
/// pushing `grad(w, step)` as identity messages.
PsRun run_ps(std::uint32_t workers, std::uint64_t steps, const OptimizerOptions& opt,
             const std::function<std::vector<float>(std::uint32_t, std::uint64_t)>& grad, std::uint64_t seed = 7) {
  PsRun run;
  const ModelSignature sig = model();
  PlacementOptions place;
  place.num_shards = 1;
  place.bucket_bytes = 4 * 50;  // several buckets, a tensor spanning two
  ShardOptions so;
  so.optimizer = opt;
  so.powersgd_spec = kSpec;
  run.cluster = std::make_unique<InprocCluster>(sig, place, so, workers);
  std::vector<std::unique_ptr<RequestClient>> clients;
  std::vector<std::unique_ptr<PowerSgdPsTransport>> transports;
  run.pulled.assign(workers, std::vector<float>(sig.total_numel(), 0.0f));
  for (std::uint32_t w = 0; w < workers; ++w) {  // worker 0 first: its parameters initialise the shard
    ClientOptions co;
    co.request_timeout_s = 60;  // no resend while a round waits for a slow thread: bytes stay exact
    clients.push_back(run.cluster->make_worker(co));
    transports.push_back(std::make_unique<PowerSgdPsTransport>(*clients[w], *clients[w], kSpec, seed, workers));
    if (w == 0) {
      for (std::size_t i = 0; i < run.pulled[0].size(); ++i) run.pulled[0][i] = 0.01f * static_cast<float>(i % 7);
    }
    transports[w]->connect(run.cluster->signature(), w, run.pulled[w].data());
  }
  std::vector<TrafficCounters> connected;
  for (auto& t : transports) connected.push_back(t->counters());
  const Layout& layout = run.cluster->layout();
  auto identity = quant::make_codec("identity");
  std::vector<std::thread> threads;
  for (std::uint32_t w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      for (std::uint64_t s = 0; s < steps; ++s) {
        const std::vector<float> g = grad(w, s);
        std::vector<std::vector<std::uint8_t>> msgs;
        std::vector<Handle> hs;
        for (const Bucket& b : layout.buckets) msgs.push_back(identity->encode(g.data() + b.offset, b.numel, {}));
        for (std::size_t b = layout.buckets.size(); b-- > 0;) {  // backward order, as a trainer pushes
          hs.push_back(transports[w]->push(s, static_cast<std::uint32_t>(b), msgs[b].data(), msgs[b].size()));
        }
        for (Handle h : hs) transports[w]->wait(h);
        transports[w]->wait(transports[w]->pull(s, run.pulled[w].data()));
      }
    });
  }
  for (auto& t : threads) t.join();
  for (std::uint32_t w = 0; w < workers; ++w) {
    TrafficCounters c = transports[w]->counters();
    c.up.payload_bytes -= connected[w].up.payload_bytes;
    c.down.payload_bytes -= connected[w].down.payload_bytes;
    run.traffic.push_back(c);
  }
  return run;
}

TEST(PowerSgdPs, ShardParametersEqualTheHandDrivenReferenceBitwise) {
  const std::uint32_t W = 3;
  const std::uint64_t steps = 4;
  OptimizerOptions opt;
  opt.lr = 0.05f;
  opt.momentum = 0.9f;
  const ModelSignature sig = model();
  const std::size_t n = sig.total_numel();
  auto grad = [&](std::uint32_t w, std::uint64_t s) { return gradient(n, w, s); };
  const PsRun run = run_ps(W, steps, opt, grad);

  // Reference: W workers' PowerSgdTensors driven in one thread, sums in rank order.
  std::vector<PowerSgdTensors> ws;
  for (std::uint32_t w = 0; w < W; ++w) ws.emplace_back(sig, kSpec, 7, true);
  std::vector<float> params(n), momentum(n, 0.0f);
  for (std::size_t i = 0; i < n; ++i) params[i] = 0.01f * static_cast<float>(i % 7);
  const std::size_t P = ws[0].p_floats(), Q = ws[0].q_floats(), D = ws[0].dense_floats();
  ASSERT_GT(P, 0u);
  ASSERT_EQ(ws[0].compressed_tensors(), 2u);
  for (std::uint64_t s = 0; s < steps; ++s) {
    std::vector<std::vector<float>> g(W);
    std::vector<float> psum(P, 0.0f), qsum(Q + D, 0.0f), buf;
    for (std::uint32_t w = 0; w < W; ++w) {
      g[w] = grad(w, s);
      buf.assign(P, 0.0f);
      ws[w].compute_p(g[w].data(), buf.data(), s);
      for (std::size_t i = 0; i < P; ++i) psum[i] = w == 0 ? buf[i] : psum[i] + buf[i];
    }
    for (std::uint32_t w = 0; w < W; ++w) {
      ws[w].set_reduced_p(psum.data(), s);
      buf.assign(Q + D, 0.0f);
      ws[w].compute_q(buf.data(), s);
      ws[w].gather_dense(g[w].data(), buf.data() + Q);
      for (std::size_t i = 0; i < Q + D; ++i) qsum[i] = w == 0 ? buf[i] : qsum[i] + buf[i];
    }
    const float inv = 1.0f / static_cast<float>(W);
    std::vector<float> qmean(qsum.begin(), qsum.begin() + static_cast<std::ptrdiff_t>(Q));
    for (float& v : qmean) v *= inv;
    std::vector<float> step_grad(n, 0.0f);
    for (std::uint32_t w = 0; w < W; ++w) ws[w].finish(qmean.data(), g[w].data(), s);
    step_grad = g[0];  // every worker's approximation is the same
    ws[0].scatter_dense(qsum.data() + Q, inv, step_grad.data());
    mean_sgd_step(opt, s, params.data(), step_grad.data(), momentum.data(), n, 1);
  }
  EXPECT_EQ(run.cluster->gather_params(), params);
  for (std::uint32_t w = 0; w < W; ++w) EXPECT_EQ(run.pulled[w], params) << "worker " << w;
  const ShardStats st = run.cluster->shard_stats(0);
  EXPECT_EQ(st.version, steps);
  EXPECT_EQ(st.refused, 0u);
}

TEST(PowerSgdPs, AGradientOfRankAtMostRComesThroughWhole) {
  const ModelSignature sig = model();
  const std::size_t n = sig.total_numel();
  // fc.weight = a b^T + c d^T (rank 2), conv.weight (3 x 8) = e f^T (rank 1), bias anything.
  std::vector<float> g(n, 0.0f);
  for (std::size_t i = 0; i < 12; ++i) {
    for (std::size_t j = 0; j < 10; ++j) {
      g[i * 10 + j] = static_cast<float>(i + 1) * static_cast<float>(j % 3 + 1) * 0.1f +
                      std::cos(static_cast<float>(i)) * static_cast<float>(j) * 0.05f;
    }
  }
  for (std::size_t i = 0; i < 12; ++i) g[120 + i] = 0.3f * static_cast<float>(i) - 1.0f;
  for (std::size_t i = 0; i < 3; ++i) {
    for (std::size_t j = 0; j < 8; ++j) g[132 + i * 8 + j] = static_cast<float>(i + 2) * (static_cast<float>(j) - 3.5f) * 0.2f;
  }
  OptimizerOptions opt;
  opt.lr = 1.0f;
  opt.momentum = 0.0f;
  const PsRun run = run_ps(2, 1, opt, [&](std::uint32_t, std::uint64_t) { return g; });
  const std::vector<float> got = run.cluster->gather_params();
  for (std::size_t i = 0; i < n; ++i) {
    const float want = 0.01f * static_cast<float>(i % 7) - g[i];  // one step of lr 1: x - G
    EXPECT_NEAR(got[i], want, 1e-5f * (1.0f + std::fabs(want))) << "element " << i;
  }
}

TEST(PowerSgdPs, CountsBothRoundsPerDirectionAsTheFormulaSays) {
  const ModelSignature sig = model();
  const std::size_t n = sig.total_numel();
  OptimizerOptions opt;
  const std::uint64_t steps = 3;
  const PsRun one = run_ps(2, steps, opt, [&](std::uint32_t w, std::uint64_t s) { return gradient(n, w, s); });
  PowerSgdTensors t(sig, kSpec, 7, false);
  const std::size_t P = t.p_floats(), Q = t.q_floats(), D = t.dense_floats();
  const std::size_t H = quant::kHeaderBytes;  // identity: header + 4 bytes a value, no codec params
  // Per step: up = round 1 (H + 4P) + round 2 (H + 4(Q + D)); the pull request has no body.
  // Down = round 1's sum (H + 4P) + round 2's sum of q (H + 4Q) + the pull reply (one
  // identity message per bucket).
  const Layout& layout = one.cluster->layout();
  std::size_t pull_reply = 0;
  for (const Bucket& b : layout.buckets) pull_reply += H + 4 * b.numel;
  for (std::uint32_t w = 0; w < 2; ++w) {
    const TrafficCounters& c = one.traffic[w];
    EXPECT_EQ(c.up.payload_bytes, steps * (2 * H + 4 * (P + Q + D))) << "worker " << w;
    EXPECT_EQ(c.down.payload_bytes, steps * (2 * H + 4 * (P + Q) + pull_reply)) << "worker " << w;
    // Each worker sends less than the dense gradient would (P + Q + D < n).
    EXPECT_LT(P + Q + D, n);
  }
}

using testing::Harness;

/// A shard of the LSQ model (1-D tensors only: everything dense, round 1 carries 0 floats).
struct ReduceHarness : Harness {
  ReduceHarness() : Harness(options_with_powersgd(), 1) { init(); }
  static ShardOptions options_with_powersgd() {
    ShardOptions o;
    o.num_workers = 2;
    o.powersgd_spec = "powersgd:rank=1";
    return o;
  }
  std::vector<std::uint8_t> floats(std::size_t count, float v = 0.5f) {
    std::vector<float> x(count, v);
    return quant::make_codec("identity")->encode(x.data(), x.size(), {});
  }
  std::vector<Envelope> reduce(std::uint32_t w, std::uint32_t round, std::uint64_t step,
                               const std::vector<std::uint8_t>& body, std::uint64_t seq) {
    return send({env(MsgType::kReduce, w, round, step, seq), body});
  }
};

TEST(PowerSgdPs, ShardRefusesMalformedReduceRequestsWithTypedErrors) {
  ReduceHarness h;
  const std::size_t dense = h.sig.total_numel();
  auto refused = [&](const std::vector<Envelope>& r, ProtoErr want) {
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].type, MsgType::kError);
    EXPECT_EQ(testing::err_of(r[0]), want) << proto_err_name(testing::err_of(r[0]));
  };
  refused(h.reduce(0, 3, 0, h.floats(0), 1), ProtoErr::kMalformed);                  // no round 3
  refused(h.send({Harness::env(MsgType::kReduce, 0, 1, 0, 2)}), ProtoErr::kMalformed);  // no body
  refused(h.reduce(0, 2, 0, h.floats(dense), 3), ProtoErr::kNotReducing);           // round 2 before round 1
  refused(h.reduce(0, 1, 5, h.floats(0), 4), ProtoErr::kNotReducing);               // another step
  refused(h.reduce(0, 1, 0, h.floats(3), 5), ProtoErr::kSizeMismatch);              // round 1 carries 0 floats here
  std::vector<std::uint8_t> torn = h.floats(0);
  torn[torn.size() / 2] ^= 0x5A;
  refused(h.reduce(0, 1, 0, torn, 6), ProtoErr::kBadMessage);                       // checksum
  refused(h.reduce(0, 1, 0, {1, 2, 3}, 7), ProtoErr::kBadMessage);                  // not a message
  refused(h.reduce(0, 1, 0, h.grad_msg(h.owned(), 1.0f, "fp16"), 8), ProtoErr::kCodecMismatch);
  // Nothing above counted: a good round completes with both workers.
  EXPECT_TRUE(h.reduce(0, 1, 0, h.floats(0), 9).empty());
  const auto both = h.reduce(1, 1, 0, h.floats(0), 10);
  ASSERT_EQ(both.size(), 2u);
  for (const Envelope& e : both) EXPECT_EQ(e.type, reply_type(MsgType::kReduce));
  refused(h.reduce(0, 2, 0, h.floats(dense - 1), 11), ProtoErr::kSizeMismatch);
  EXPECT_TRUE(h.reduce(0, 2, 0, h.floats(dense), 12).empty());
  EXPECT_EQ(h.reduce(1, 2, 0, h.floats(dense), 13).size(), 2u);
  EXPECT_EQ(h.shard->version(), 1u);
  // A retried round 2 of the applied step gets its reply again; the shard is unchanged.
  const auto again = h.reduce(1, 2, 0, h.floats(dense), 13);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].type, reply_type(MsgType::kReduce));
  EXPECT_EQ(h.shard->version(), 1u);
  for (float v : h.shard->params()) EXPECT_NE(v, 1.0f);  // the dense mean 0.5 was applied
}

TEST(PowerSgdPs, ShardWithoutPowerSgdRefusesReduce) {
  ShardOptions o;
  o.num_workers = 1;
  Harness h(o, 1);
  h.init();
  const auto r = h.send({Harness::env(MsgType::kReduce, 0, 1, 0, 1), std::vector<std::uint8_t>(8, 0)});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(testing::err_of(r[0]), ProtoErr::kNotReducing);
}

TEST(PowerSgdPs, ShardRefusesOptionsItCannotRun) {
  for (int c = 0; c < 4; ++c) {
    ShardOptions o;
    o.powersgd_spec = "powersgd:rank=1";
    std::uint32_t shards = 1;
    if (c == 0) o.mode = SyncMode::kAsync;
    if (c == 1) shards = 2;
    if (c == 2) o.aggregation = Aggregation::kMajorityVote;
    if (c == 3) o.powersgd_spec = "powersgd:rank=0";
    EXPECT_THROW(Harness h(o, shards), std::invalid_argument) << "case " << c;
  }
}

}  // namespace
}  // namespace gradzip::comm
