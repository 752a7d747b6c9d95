// The overlapped step through torch: autograd hooks on a model of known layer order,
// and run_training end to end (overlap on vs off, async/SSP, compressed downlink with
// resyncs, injected faults). Tiny models on synthetic data: a few seconds each.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <stdexcept>

#include "comm/layout.h"
#include "tests/trainer/tiny_config.h"
#include "trainer/bucket_schedule.h"
#include "trainer/errors.h"
#include "trainer/grad_hooks.h"
#include "trainer/train.h"

namespace gz = gradzip::trainer;
namespace comm = gradzip::comm;

namespace {

/// Linear layers 6 -> 8 -> 8 -> 8 -> 3: registration order = forward order, so
/// backward completes the parameters from the last layer to the first.
struct FakeModel {
  torch::nn::Sequential net{torch::nn::Linear(6, 8), torch::nn::ReLU(), torch::nn::Linear(8, 8), torch::nn::ReLU(),
                            torch::nn::Linear(8, 8), torch::nn::ReLU(), torch::nn::Linear(8, 3)};
  std::vector<torch::Tensor> params = net->parameters();
  comm::ModelSignature signature() const {
    comm::ModelSignature s;
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto numel = static_cast<std::uint64_t>(params[i].numel());
      s.tensors.push_back({"p" + std::to_string(i), params[i].sizes().vec(), numel});
    }
    return s;
  }
  void backward() {
    torch::manual_seed(3);
    const torch::Tensor x = torch::randn({5, 6});
    torch::nn::functional::cross_entropy(net->forward(x), torch::tensor({0, 1, 2, 0, 1})).backward();
  }
};

TEST(GradHooks, FireEachBucketOncePerStepInBackwardOrderAfterTheGradientIsIn) {
  FakeModel m;
  const comm::ModelSignature sig = m.signature();
  comm::PlacementOptions p;
  p.bucket_bytes = 4 * 40;  // buckets cut across layers and through the larger weights
  const comm::Layout layout = comm::make_layout(sig, p);
  ASSERT_GE(layout.buckets.size(), 4u);
  gz::BucketSchedule schedule(sig.tensors, layout);
  std::vector<std::uint32_t> fired;
  std::vector<bool> grad_was_in;
  gz::GradHooks hooks(
      m.params,
      [&](std::size_t t) {
        grad_was_in.push_back(m.params[t].grad().defined() && m.params[t].grad().abs().sum().item<float>() > 0);
        schedule.tensor_ready(t, &fired);
      },
      [](std::exception_ptr) { FAIL() << "no hook error expected"; });
  for (int step = 0; step < 3; ++step) {
    schedule.begin_step();
    fired.clear();
    for (auto& t : m.params) {
      if (t.grad().defined()) t.mutable_grad().zero_();
    }
    m.backward();
    EXPECT_TRUE(schedule.fire_remaining().empty()) << "every parameter got its gradient";
    ASSERT_EQ(fired.size(), layout.buckets.size()) << "each bucket exactly once, step " << step;
    for (std::size_t i = 0; i < fired.size(); ++i) EXPECT_EQ(fired[i], layout.buckets.size() - 1 - i) << step;
  }
  EXPECT_EQ(grad_was_in, std::vector<bool>(grad_was_in.size(), true)) << "post-hooks see the accumulated .grad";
  // Disabled hooks do nothing.
  hooks.set_enabled(false);
  fired.clear();
  schedule.begin_step();
  m.backward();
  EXPECT_TRUE(fired.empty());
}

TEST(GradHooks, AnErrorInAHookIsReportedAndBackwardCompletes) {
  FakeModel m;
  std::atomic<int> calls{0};
  std::exception_ptr error;
  gz::GradHooks hooks(
      m.params,
      [&](std::size_t t) {
        ++calls;
        if (t == 2) throw std::runtime_error("hook of tensor 2");
      },
      [&](std::exception_ptr e) { error = e; });
  EXPECT_NO_THROW(m.backward());
  EXPECT_EQ(calls.load(), static_cast<int>(m.params.size())) << "the other hooks still ran";
  ASSERT_TRUE(error);
  EXPECT_THROW(std::rethrow_exception(error), std::runtime_error);
}

gz::TrainConfig tiny(std::uint32_t workers) {
  gz::testing::TinyRun r;
  r.workers = workers;
  gz::TrainConfig c = gz::testing::tiny_mlp_config(r);
  c.optimizer.momentum = 0.9;
  c.placement.num_shards = 2;
  c.placement.bucket_bytes = 4 * 700;
  c.placement.first_bucket_bytes = 4 * 200;
  c.placement.min_compress_numel = 64;
  c.loader_threads = 1;
  c.torch_threads = 1;
  return c;
}

// Sync mode, CPU: the overlapped pipeline (hooks, pool, per-bucket pulls, gated
// forward; three workers on threads, pushes in worker order) ends on the same
// parameters and metrics as the sequential step, bit for bit.
TEST(Overlap, SameParametersAsTheSequentialStep) {
  gz::TrainConfig c = tiny(3);
  c.overlap = false;
  const gz::TrainResult seq = gz::run_training(c);
  c.overlap = true;
  const gz::TrainResult ovl = gz::run_training(c);
  EXPECT_FALSE(seq.overlapped);
  EXPECT_TRUE(ovl.overlapped);
  ASSERT_EQ(seq.epochs.size(), ovl.epochs.size());
  ASSERT_FALSE(seq.final_params.empty());
  EXPECT_EQ(seq.final_params, ovl.final_params);
  for (std::size_t e = 0; e < seq.epochs.size(); ++e) {
    EXPECT_EQ(seq.epochs[e].train_loss, ovl.epochs[e].train_loss);
    EXPECT_EQ(seq.epochs[e].test_loss, ovl.epochs[e].test_loss);
    EXPECT_EQ(seq.epochs[e].bytes_up, ovl.epochs[e].bytes_up) << "same gradient bytes for the same layout";
    EXPECT_EQ(seq.epochs[e].bytes_down, ovl.epochs[e].bytes_down);
  }
  EXPECT_EQ(ovl.replica_max_abs_diff, 0.0) << "every worker holds the shards' parameters";
  EXPECT_EQ(seq.steps, 2u * (384 / 3 / 16));
}

TEST(Overlap, AsyncAndSspRunAndCountStalenessPerPush) {
  for (auto mode : {comm::SyncMode::kAsync, comm::SyncMode::kSsp}) {
    for (bool overlap : {true, false}) {
      gz::TrainConfig c = tiny(2);
      c.mode = mode;
      c.ssp_slack = mode == comm::SyncMode::kSsp ? 1 : 0;
      c.overlap = overlap;
      c.straggler_worker = 1;
      c.straggler_factor = 3;
      const gz::TrainResult r = gz::run_training(c);
      ASSERT_EQ(r.epochs.size(), 2u);
      const auto layout = comm::make_layout(gz::make_signature(c, 1, 8, 8, c.synthetic.classes), c.placement);
      const auto& s = r.epochs.back().traffic.staleness;
      EXPECT_EQ(s.pushes, r.steps * 2 * layout.buckets.size()) << "every applied push reports its staleness";
      EXPECT_GT(r.epochs.back().test_accuracy, 0.0);
    }
  }
  const gz::TrainResult sync = gz::run_training(tiny(2));
  EXPECT_EQ(sync.epochs.back().traffic.staleness.pushes, 0u) << "sync pushes are never stale";
}

TEST(Overlap, CompressedDownlinkKeepsReplicasOnTheShardsWithResyncs) {
  for (bool overlap : {true, false}) {
    gz::TrainConfig c = tiny(2);
    c.overlap = overlap;
    c.downlink = "topk:ratio=0.05";
    c.downlink_resync_steps = 5;
    const gz::TrainResult r = gz::run_training(c);
    EXPECT_EQ(r.replica_max_abs_diff, 0.0) << "workers hold the shards' replica bit for bit";
    EXPECT_GT(r.resyncs, 0u);
    EXPECT_EQ(r.resync_max_abs_diff, 0.0) << "no drift found at any resync";
    c.downlink = "dense";
    c.downlink_resync_steps = 0;
    EXPECT_LT(r.bytes_down, gz::run_training(c).bytes_down / 2) << "top-k 5% deltas, even with resyncs";
  }
}

TEST(Overlap, InjectedHookAndPushFaultsStopTheRunWithTypedErrors) {
  gz::TrainConfig c = tiny(3);
  c.fault = gz::TrainConfig::Fault::kHook;
  c.fault_step = 2;
  try {
    gz::run_training(c);
    FAIL() << "no error";
  } catch (const gz::PipelineError& e) {
    EXPECT_EQ(e.stage(), gz::PipelineError::Stage::kHook);
    EXPECT_NE(std::string(e.what()).find("step 2"), std::string::npos) << e.what();
  }
  c.fault = gz::TrainConfig::Fault::kPush;
  for (bool overlap : {true, false}) {
    c.overlap = overlap;
    EXPECT_THROW(gz::run_training(c), comm::CommError) << "overlap " << overlap;
  }
  c.fault = gz::TrainConfig::Fault::kHook;
  EXPECT_THROW(gz::run_training(c), gz::ConfigError) << "no hooks in the sequential step";
}

}  // namespace
