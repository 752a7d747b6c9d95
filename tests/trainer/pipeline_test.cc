// The overlapped pipeline without torch (trainer/bucket_schedule.h, trainer/pipeline.h):
// a least-squares "model" whose backward is played by hand, over the in-process
// transport. The bucket schedule fires every bucket exactly once per step in backward
// order; the pipeline sends the same bytes and ends on the same parameters as the
// sequential push-all-then-pull loop; failures surface as typed errors and stop it.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "comm/inproc.h"
#include "quant/rules.h"
#include "tests/comm/lsq.h"
#include "trainer/bucket_encoder.h"
#include "trainer/bucket_schedule.h"
#include "trainer/errors.h"
#include "trainer/pipeline.h"
#include "trainer/transport_decorators.h"

namespace gz = gradzip::trainer;
namespace comm = gradzip::comm;

namespace {

comm::Layout lsq_layout(const comm::ModelSignature& sig, std::uint32_t shards, std::uint64_t bucket_numel) {
  comm::PlacementOptions p;
  p.num_shards = shards;
  p.bucket_bytes = 4 * bucket_numel;
  return comm::make_layout(sig, p);
}

TEST(BucketSchedule, FiresEveryBucketOnceInBackwardOrder) {
  // Tensors of uneven sizes; buckets of 30 elements cut through several of them.
  const auto sig = comm::testing::lsq_signature({37, 5, 100, 1, 64, 13});
  const comm::Layout layout = lsq_layout(sig, 1, 30);
  gz::BucketSchedule s(sig.tensors, layout);
  for (int step = 0; step < 3; ++step) {
    s.begin_step();
    std::vector<std::uint32_t> fired;
    for (std::size_t t = sig.tensors.size(); t-- > 0;) s.tensor_ready(t, &fired);  // backward: last tensor first
    EXPECT_TRUE(s.fire_remaining().empty()) << "every bucket fired from the tensors";
    ASSERT_EQ(fired.size(), layout.buckets.size()) << "step " << step;
    for (std::size_t i = 0; i < fired.size(); ++i) {
      EXPECT_EQ(fired[i], layout.buckets.size() - 1 - i) << "descending ids: the last layers' bucket first";
    }
  }
  // A bucket fires only when its last tensor is in: tensor 4 (64 elements at 143) and 5
  // (13 at 207) cover the last bucket [210, 220) only through tensor 5.
  s.begin_step();
  std::vector<std::uint32_t> fired;
  s.tensor_ready(5, &fired);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], layout.buckets.size() - 1);
  EXPECT_THROW(s.tensor_ready(5, &fired), std::logic_error) << "a tensor reported twice in a step";
  EXPECT_THROW(s.tensor_ready(99, &fired), std::logic_error);
  // Tensors that got no gradient: their buckets fire from fire_remaining, once.
  const auto rest = s.fire_remaining();
  EXPECT_EQ(rest.size(), layout.buckets.size() - 1);
  EXPECT_TRUE(s.fire_remaining().empty());
  // The buckets a flat range needs (what a layer's forward waits for).
  EXPECT_EQ(s.buckets_in(0, 1), std::make_pair(0u, 0u));
  EXPECT_EQ(s.buckets_in(29, 31), std::make_pair(0u, 1u));
  EXPECT_EQ(s.buckets_in(219, 220).second, layout.buckets.size() - 1);
}

struct LsqRun {
  comm::ModelSignature sig = comm::testing::lsq_signature({37, 5, 100, 1, 64, 13});
  comm::PlacementOptions placement;
  comm::ShardOptions shard;
  std::vector<gradzip::quant::Compressor> compressors;  // one per layout spec (Bucket::spec)
  std::unique_ptr<gradzip::quant::Codec> identity = gradzip::quant::make_codec("identity");
  /// `rules`: per-tensor compressor rules (quant/rules.h) with `spec` as the catch-all.
  LsqRun(const std::string& spec, const std::string& downlink, const std::string& rules = "") {
    sig.compressor_spec = gradzip::quant::run_compressor_string(spec, "", rules);
    sig.downlink_spec = downlink;
    placement.num_shards = 2;
    placement.bucket_bytes = 4 * 30;
    shard.optimizer.lr = 1.0;
    shard.optimizer.momentum = 0.5;
    for (const auto& c : comm::make_layout(sig, placement).specs) {
      compressors.push_back(gradzip::quant::make_compressor(c));
    }
  }
};

/// Runs `steps` steps of one worker: sequential (push all, wait, pull) or through the
/// pipeline with buckets fired in backward order; returns the final parameters and
/// the worker's counters.
std::pair<std::vector<float>, comm::TrafficCounters> run(LsqRun& s, bool overlap, std::uint64_t steps,
                                                         std::uint64_t resync = 0, double* resync_diff = nullptr) {
  comm::InprocCluster cluster(s.sig, s.placement, s.shard, 1);
  auto client = cluster.make_worker();
  const comm::Layout& layout = cluster.layout();
  const std::size_t d = s.sig.total_numel();
  comm::testing::LsqProblem problem(d, 16, 0);
  std::vector<float> x(d, 0.1f), g(d, 0.0f);
  client->connect(cluster.signature(), 0, x.data());
  gz::BucketEncoder encoder(layout, s.compressors, *s.identity, 5, 0);
  if (!overlap) {
    for (std::uint64_t step = 0; step < steps; ++step) {
      problem.gradient(x.data(), g.data());
      std::vector<comm::Handle> hs;
      for (const auto& b : layout.buckets) {
        encoder.encode(b.id, step, g.data());
        hs.push_back(client->push(step, b.id, encoder.message(b.id), encoder.message_bytes(b.id)));
      }
      for (auto h : hs) client->wait(h);
      client->wait(client->pull(step, x.data()));
    }
    return {x, client->counters()};
  }
  gz::TaskPool pool(2);
  gz::PipelineOptions po;
  po.compressed_downlink = s.sig.downlink_spec != "dense";
  po.resync_every = resync;
  comm::TrafficCounters counters;
  {
    gz::BucketPipeline p(layout, encoder, *client, pool, po, 0);
    const auto last = static_cast<std::uint32_t>(layout.buckets.size() - 1);
    for (std::uint64_t step = 0; step < steps; ++step) {
      p.begin_step(step, g.data(), x.data());
      p.wait_params(0, last, step);
      std::vector<float> grad(d);
      problem.gradient(x.data(), grad.data());
      for (std::size_t i = 0; i < d; ++i) g[i] += grad[i];  // backward accumulates into zeroed gradients
      for (std::uint32_t b = last + 1; b-- > 0;) p.bucket_ready(b);
      p.end_backward();
    }
    p.drain();
    counters = p.counters();
    if (resync_diff) *resync_diff = p.resync_max_abs_diff();
  }
  return {x, counters};
}

TEST(BucketPipeline, SameBytesAndParametersAsTheSequentialLoop) {
  for (const std::string spec : {"identity", "ef+qsgd:bits=4", "ef+topk:ratio=0.2"}) {
    LsqRun s(spec, "dense");
    const auto seq = run(s, false, 6);
    const auto ovl = run(s, true, 6);
    EXPECT_EQ(seq.first, ovl.first) << spec;
    EXPECT_EQ(seq.second.up.payload_bytes, ovl.second.up.payload_bytes) << spec;
    EXPECT_EQ(seq.second.down.payload_bytes, ovl.second.down.payload_bytes) << spec;
  }
}

TEST(BucketPipeline, BucketsOfPerTensorRulesFireWithTheirOwnCompressor) {
  // Three specs: buckets form per rule (comm/layout.h), and each bucket, the unit the
  // pipeline fires, is encoded with its own spec's compressor on both paths.
  LsqRun s("ef+topk:ratio=0.2", "dense", "layer2.*=ef+qsgd:bits=4; numel<10=identity");
  const comm::Layout layout = comm::make_layout(s.sig, s.placement);
  ASSERT_EQ(layout.specs.size(), 3u);
  std::vector<int> buckets_of_spec(layout.specs.size(), 0);
  for (const auto& b : layout.buckets) ++buckets_of_spec[b.spec];
  for (int n : buckets_of_spec) EXPECT_GT(n, 0);
  const auto seq = run(s, false, 6);
  const auto ovl = run(s, true, 6);
  EXPECT_EQ(seq.first, ovl.first);
  EXPECT_EQ(seq.second.up.payload_bytes, ovl.second.up.payload_bytes);
  // Each rule changes the bytes: the run differs from one with the catch-all spec alone.
  LsqRun plain("ef+topk:ratio=0.2", "dense");
  EXPECT_NE(run(plain, false, 6).second.up.payload_bytes, seq.second.up.payload_bytes);
}

TEST(BucketPipeline, CompressedDownlinkReplicaSurvivesDenseResyncs) {
  LsqRun s("identity", "topk:ratio=0.1");
  double diff = -1;
  const auto ovl = run(s, true, 8, /*resync=*/3, &diff);
  EXPECT_EQ(diff, 0.0) << "worker replica == the shards' replica at every resync";
  const auto seq = run(s, false, 8);
  EXPECT_EQ(seq.first, ovl.first) << "resyncs replace the replica by itself";
}

TEST(BucketPipeline, EncodeFailureAndPushFailureAreTypedAndStopThePipeline) {
  LsqRun s("identity", "dense");
  comm::InprocCluster cluster(s.sig, s.placement, s.shard, 1);
  auto client = cluster.make_worker();
  const comm::Layout& layout = cluster.layout();
  std::vector<float> x(s.sig.total_numel(), 0.1f), g(x.size(), 0.0f);
  client->connect(cluster.signature(), 0, x.data());
  gz::BucketEncoder encoder(layout, s.compressors, *s.identity, 5, 0);
  gz::TaskPool pool(2);
  const auto last = static_cast<std::uint32_t>(layout.buckets.size() - 1);
  {
    // A NaN gradient: identity refuses it; the error names the bucket and reaches the worker.
    gz::BucketPipeline p(layout, encoder, *client, pool, {}, 0);
    p.begin_step(0, g.data(), x.data());
    g[layout.buckets[1].offset] = std::numeric_limits<float>::quiet_NaN();
    for (std::uint32_t b = last + 1; b-- > 0;) p.bucket_ready(b);
    p.end_backward();
    try {
      p.drain();
      FAIL() << "no error";
    } catch (const gz::PipelineError& e) {
      EXPECT_EQ(e.stage(), gz::PipelineError::Stage::kEncode);
      EXPECT_NE(std::string(e.what()).find("bucket 1"), std::string::npos) << e.what();
    }
    EXPECT_THROW(p.wait_params(0, last, 1), gz::PipelineError) << "every later wait rethrows";
  }  // the destructor joins: no hang with the step half done
  std::fill(g.begin(), g.end(), 0.0f);
  {
    gz::FaultyPushTransport faulty(*client, 0);
    gz::BucketPipeline p(layout, encoder, faulty, pool, {}, 0);
    p.begin_step(0, g.data(), x.data());
    for (std::uint32_t b = last + 1; b-- > 0;) p.bucket_ready(b);
    p.end_backward();
    EXPECT_THROW(p.wait_params(0, 0, 1), comm::CommError);
  }
  {
    // A hook error reported by the caller.
    gz::BucketPipeline p(layout, encoder, *client, pool, {}, 0);
    p.begin_step(0, g.data(), x.data());
    p.fail(std::make_exception_ptr(gz::PipelineError(gz::PipelineError::Stage::kHook, "hook failed")));
    EXPECT_THROW(p.drain(), gz::PipelineError);
  }
}

TEST(TransportDecorators, ModeledLinkTakesBytesOverBandwidthAndOrderedPushesTakeTurns) {
  LsqRun s("identity", "dense");
  comm::InprocCluster cluster(s.sig, s.placement, s.shard, 1);
  auto client = cluster.make_worker();
  std::vector<float> x(s.sig.total_numel(), 0.1f);
  gz::ModeledLinkTransport link(*client, 1e5);  // 100 kB/s: a 1 kB push takes 10 ms
  link.connect(cluster.signature(), 0, x.data());
  const auto& b = cluster.layout().buckets[0];
  std::vector<float> g(b.numel, 0.0f);
  const auto msg = s.identity->encode(g.data(), b.numel, gradzip::quant::SeedContext{});
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) link.wait(link.push(0, b.id, msg.data(), msg.size()));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(seconds, 5.0 * static_cast<double>(msg.size() + comm::kEnvelopeBytes) / 1e5 * 0.99)
      << "never faster than the modeled bandwidth";

  gz::PushTurns turns(3, 1);
  std::vector<int> order;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (std::uint32_t w : {2u, 0u, 1u}) {
    threads.emplace_back([&, w] {
      turns.await(w, 0);
      {
        std::lock_guard<std::mutex> lock(mu);
        order.push_back(static_cast<int>(w));
      }
      turns.done(0);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  turns.cancel();
  EXPECT_THROW(turns.await(1, 0), comm::CommError);
}

// Records which push overload reached it (the bottom of a decorator stack).
class RecordingTransport final : public comm::WorkerTransport {
 public:
  void connect(const comm::ModelSignature&, std::uint32_t, float*) override {}
  comm::Handle push(std::uint64_t, std::uint32_t, const std::uint8_t*, std::size_t) override { return ++copied; }
  comm::Handle push(std::uint64_t, std::uint32_t, comm::SharedBytes msg) override {
    shared.push_back(msg);
    return 1000 + shared.size();
  }
  comm::Handle pull(std::uint64_t, float*) override { return 0; }
  comm::Handle pull_bucket(std::uint64_t, std::uint32_t, float*, bool) override { return 0; }
  void wait(comm::Handle) override {}
  void abort() override {}
  void barrier() override {}
  comm::TrafficCounters counters() const override { return {}; }
  comm::Handle copied = 0;
  std::vector<comm::SharedBytes> shared;  // the very buffers handed to the shared overload
};

TEST(TransportDecorators, ZeroCopyPushesStayZeroCopyThroughEveryDecorator) {
  RecordingTransport bottom;
  gz::ModeledLinkTransport link(bottom, 1e9);
  gz::PushTurns turns(1, 1);
  gz::OrderedPushTransport ordered(link, turns, 0);
  gz::FaultyPushTransport faulty(ordered, 3);
  auto msg = std::make_shared<const std::vector<std::uint8_t>>(64, 7);
  for (std::uint64_t step = 0; step < 3; ++step) faulty.push(step, 0, msg);
  ASSERT_EQ(bottom.shared.size(), 3u) << "every shared push reached the shared overload";
  for (const auto& m : bottom.shared) EXPECT_EQ(m.get(), msg.get()) << "the same buffer, not a copy";
  EXPECT_EQ(bottom.copied, 0u) << "no push took the copying overload";
  EXPECT_THROW(faulty.push(3, 0, msg), comm::CommError) << "the decorators still act on shared pushes";
  const std::uint8_t raw[4] = {1, 2, 3, 4};
  faulty.push(4, 0, raw, sizeof raw);  // the single worker's turns kept advancing
  EXPECT_EQ(bottom.copied, 1u);
  EXPECT_EQ(bottom.shared.size(), 3u);
}

// A transport that needs one push order on every rank (collectives: ranks must start the
// same operation together) gets a step's buckets in descending id order, whatever order
// they became ready and finished encoding on two threads; others get them as encoded.
class OrderRecorder final : public gz::ForwardingTransport {
 public:
  OrderRecorder(comm::WorkerTransport& inner, bool ordered) : ForwardingTransport(inner), ordered_(ordered) {}
  bool ordered_pushes() const override { return ordered_; }
  std::vector<std::uint32_t> order;  // buckets in push order, all steps

 private:
  void before_push(std::uint64_t, std::uint32_t bucket, std::size_t) override { order.push_back(bucket); }
  bool ordered_;
};

TEST(BucketPipeline, OrderedTransportsGetEveryStepsPushesInDescendingBucketOrder) {
  LsqRun s("ef+qsgd:bits=4", "dense");
  for (const bool ordered : {true, false}) {
    comm::InprocCluster cluster(s.sig, s.placement, s.shard, 1);
    auto client = cluster.make_worker();
    OrderRecorder recorder(*client, ordered);
    const comm::Layout& layout = cluster.layout();
    const std::size_t n = layout.buckets.size();
    ASSERT_GE(n, 4u);
    std::vector<float> x(s.sig.total_numel(), 0.1f), g(s.sig.total_numel(), 0.5f);
    recorder.connect(cluster.signature(), 0, x.data());
    gz::BucketEncoder encoder(layout, s.compressors, *s.identity, 5, 0);
    gz::TaskPool pool(2);
    gz::PipelineOptions po;
    const std::uint64_t steps = 6;
    {
      gz::BucketPipeline p(layout, encoder, recorder, pool, po, 0);
      for (std::uint64_t step = 0; step < steps; ++step) {
        p.begin_step(step, g.data(), x.data());
        p.wait_params(0, static_cast<std::uint32_t>(n - 1), step);
        // Ready out of backward order: ascending ids, the first bucket last but one.
        for (std::uint32_t b = 1; b < n; ++b) p.bucket_ready(b);
        p.bucket_ready(0);
        p.end_backward();
      }
      p.drain();
    }
    ASSERT_EQ(recorder.order.size(), steps * n);
    std::vector<std::uint32_t> descending(n);
    for (std::size_t i = 0; i < n; ++i) descending[i] = static_cast<std::uint32_t>(n - 1 - i);
    bool every_step_descending = true;
    for (std::uint64_t step = 0; step < steps; ++step) {
      const std::vector<std::uint32_t> got(recorder.order.begin() + step * n, recorder.order.begin() + (step + 1) * n);
      std::vector<std::uint32_t> sorted = got;
      std::sort(sorted.rbegin(), sorted.rend());
      EXPECT_EQ(sorted, descending) << "every bucket once per step";
      every_step_descending = every_step_descending && got == descending;
    }
    if (ordered) {
      EXPECT_TRUE(every_step_descending) << "ordered transport";
    } else {
      EXPECT_FALSE(every_step_descending) << "a parameter server takes buckets as they are encoded (ready ascending)";
    }
  }
}

}  // namespace
