// Models and flat buffers (the one torch translation unit of the trainer tests).
#include <gtest/gtest.h>

#include <cmath>

#include <torch/cuda.h>

#include "trainer/errors.h"
#include "trainer/flat_model.h"
#include "trainer/model_zoo.h"

namespace gz = gradzip::trainer;

namespace {

gz::ModelSpec tiny(const std::string& name) {
  gz::ModelSpec s;
  s.name = name;
  s.channels = 3;
  s.height = name == "vgg16" ? 16 : 8;
  s.width = s.height;
  s.classes = 5;
  // Shrink widths so a double-precision finite-difference check takes milliseconds.
  s.base_width = name == "mlp" ? 12 : (name.rfind("resnet", 0) == 0 || name == "vgg16") ? 2 : 3;
  return s;
}

/// Sum of squared deviations of directional finite differences from autograd, relative.
void check_gradients(const gz::ModelSpec& spec) {
  torch::manual_seed(11);
  auto net = gz::make_model(spec);
  net->to(torch::kFloat64);
  net->train();
  // Batch 8: batch-norm statistics over fewer samples make the loss needlessly stiff.
  const torch::Tensor x = torch::randn({8, spec.channels, spec.height, spec.width}, torch::kFloat64);
  const torch::Tensor y = torch::randint(0, spec.classes, {8}, torch::kInt64);
  auto loss_fn = [&] { return torch::nn::functional::cross_entropy(net->forward(x), y); };
  auto params = net->parameters();
  for (auto& p : params) p.mutable_grad() = torch::Tensor();
  loss_fn().backward();
  torch::NoGradGuard no_grad;
  for (int dir = 0; dir < 3; ++dir) {
    std::vector<torch::Tensor> v;
    double norm2 = 0;
    for (auto& p : params) {
      v.push_back(torch::randn_like(p));
      norm2 += v.back().square().sum().item<double>();
    }
    double analytic = 0;
    for (std::size_t i = 0; i < params.size(); ++i) {
      v[i].div_(std::sqrt(norm2));  // unit direction
      analytic += (params[i].grad() * v[i]).sum().item<double>();
    }
    const double eps = 1e-6;
    for (std::size_t i = 0; i < params.size(); ++i) params[i].add_(v[i], eps);
    const double up = loss_fn().item<double>();
    for (std::size_t i = 0; i < params.size(); ++i) params[i].add_(v[i], -2 * eps);
    const double down = loss_fn().item<double>();
    for (std::size_t i = 0; i < params.size(); ++i) params[i].add_(v[i], eps);
    const double numeric = (up - down) / (2 * eps);
    EXPECT_NEAR(numeric, analytic, 1e-6 + 1e-5 * std::abs(analytic)) << spec.name << " direction " << dir;
  }
  // Single coordinates of the first and the last parameter tensor.
  for (auto* p : {&params.front(), &params.back()}) {
    torch::Tensor flat = p->view(-1);
    const double g = p->grad().view(-1)[0].item<double>();
    const double old = flat[0].item<double>();
    const double eps = 1e-6;
    flat[0] = old + eps;
    const double up = loss_fn().item<double>();
    flat[0] = old - eps;
    const double down = loss_fn().item<double>();
    flat[0] = old;
    EXPECT_NEAR((up - down) / (2 * eps), g, 1e-6 + 1e-5 * std::abs(g)) << spec.name;
  }
}

}  // namespace

class ModelGradients : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelGradients, MatchFiniteDifferencesInDouble) { check_gradients(tiny(GetParam())); }

INSTANTIATE_TEST_SUITE_P(AllModels, ModelGradients, ::testing::ValuesIn(gz::model_names()),
                         [](const auto& param_info) { return param_info.param; });

TEST(Models, ParameterCountsMatchPublished) {
  gz::ModelSpec s;
  s.channels = 3;
  s.height = s.width = 32;
  s.classes = 10;
  auto count = [&](const std::string& name, int classes) {
    s.name = name;
    s.classes = classes;
    return static_cast<double>(gz::parameter_count(s));
  };
  // He et al. 2016, Table 6 (CIFAR-10, option A): resnet20 0.27M, resnet110 1.7M.
  EXPECT_NEAR(count("resnet20", 10), 0.27e6, 0.01e6);
  EXPECT_NEAR(count("resnet110", 10), 1.7e6, 0.04e6);
  // ImageNet-style models with the 3x3 stem: resnet18 with 10 classes is the 11.2M of
  // the CIFAR literature; resnet50 with 1000 classes 25.6M (He et al. 2016, Table 1).
  EXPECT_NEAR(count("resnet18", 10), 11.2e6, 0.1e6);
  EXPECT_NEAR(count("resnet50", 1000), 25.6e6, 0.1e6);
  EXPECT_NEAR(count("vgg16", 10), 14.7e6, 0.1e6);
  EXPECT_GT(count("resnet56", 10), count("resnet44", 10));
  // Input channels and classes follow the data set.
  s.channels = 1;
  s.height = s.width = 28;
  s.name = "logreg";
  s.classes = 10;
  EXPECT_EQ(gz::parameter_count(s), 28u * 28u * 10u + 10u);
  s.name = "nosuchnet";
  EXPECT_THROW(gz::parameter_count(s), gz::ConfigError);
}

TEST(FlatModel, GradientsAndParametersAreViewsOfTheFlatBuffers) {
  gz::ModelSpec s = tiny("resnet20");
  torch::manual_seed(1);
  gz::FlatModel m(s, torch::kCPU);
  const auto infos = gz::model_parameters(s);
  ASSERT_EQ(infos.size(), m.params.size());
  const float* pbase = m.flat_params.data_ptr<float>();
  const float* gbase = m.flat_grads.data_ptr<float>();
  const torch::Tensor x = torch::randn({4, 3, 8, 8});
  const torch::Tensor y = torch::randint(0, 5, {4}, torch::kInt64);
  for (int step = 0; step < 2; ++step) {
    m.flat_grads.zero_();
    torch::nn::functional::cross_entropy(m.net->forward(x), y).backward();
    std::int64_t off = 0;
    for (std::size_t i = 0; i < m.params.size(); ++i) {
      const auto& p = m.params[i];
      EXPECT_EQ(p.data_ptr<float>(), pbase + off) << infos[i].name;
      EXPECT_EQ(p.grad().data_ptr<float>(), gbase + off) << infos[i].name;
      EXPECT_EQ(static_cast<std::uint64_t>(p.numel()), infos[i].numel);
      off += p.numel();
    }
    EXPECT_EQ(off, m.total_numel);
    EXPECT_EQ(m.flat_grads.data_ptr<float>(), gbase);
    EXPECT_GT(m.flat_grads.abs().sum().item<double>(), 0.0);
    // A write into the flat parameter buffer is what the model computes with.
    torch::NoGradGuard g;
    m.flat_params.sub_(m.flat_grads, 0.1);
  }
  // Writing through the flat buffer changes the parameter tensor.
  m.flat_params.fill_(0.25f);
  EXPECT_EQ(m.params.front().view(-1)[0].item<float>(), 0.25f);
}

TEST(FlatModel, OverfitsATinyBatch) {
  gz::ModelSpec s;
  s.name = "resnet20";
  s.base_width = 8;
  s.channels = 3;
  s.height = s.width = 12;
  s.classes = 10;
  torch::manual_seed(3);
  gz::FlatModel m(s, torch::kCPU);
  const torch::Tensor x = torch::randn({32, 3, 12, 12});
  const torch::Tensor y = torch::arange(32, torch::kInt64).remainder(10);
  torch::Tensor momentum = torch::zeros_like(m.flat_params);
  double acc = 0;
  for (int step = 0; step < 150 && acc < 1.0; ++step) {
    m.net->train();
    m.flat_grads.zero_();
    torch::Tensor logits = m.net->forward(x);
    torch::nn::functional::cross_entropy(logits, y).backward();
    torch::NoGradGuard g;
    momentum.mul_(0.9).add_(m.flat_grads);  // SGD with momentum on the flat buffers
    m.flat_params.sub_(momentum, 0.05);
    acc = logits.argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
  }
  EXPECT_EQ(acc, 1.0);
}

TEST(Device, ParsesAndRejects) {
  EXPECT_TRUE(gz::parse_device("cpu").is_cpu());
  EXPECT_THROW(gz::parse_device("gpu"), gz::ConfigError);
  EXPECT_EQ(gz::parse_device("auto").is_cuda(), torch::cuda::is_available());
  if (!torch::cuda::is_available()) {
    EXPECT_THROW(gz::parse_device("cuda:0"), gz::ConfigError);
  }
}
