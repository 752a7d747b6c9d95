// Model zoo implementation (torch). References in trainer/models.h.
#include <algorithm>
#include <string>
#include <vector>

#include "trainer/errors.h"
#include "trainer/model_zoo.h"

#include <torch/cuda.h>

namespace gradzip::trainer {
namespace nn = torch::nn;
namespace {

nn::Conv2d conv(int in, int out, int k, int stride, int pad) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(false));
}

/// He et al. 2015 ("Delving deep into rectifiers") initialisation for convolutions,
/// BN gamma = 1, beta = 0 (torch's default), as in He et al. 2016.
void init_weights(nn::Module& m) {
  torch::NoGradGuard guard;
  for (auto& sub : m.modules(/*include_self=*/false)) {
    if (auto* c = sub->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    }
  }
}

// ---- CIFAR ResNets (option A shortcuts) ----------------------------------------
class BlockA : public nn::Module {
 public:
  BlockA(int in, int out, int stride) : in_(in), out_(out), stride_(stride) {
    c1 = register_module("conv1", conv(in, out, 3, stride, 1));
    b1 = register_module("bn1", nn::BatchNorm2d(out));
    c2 = register_module("conv2", conv(out, out, 3, 1, 1));
    b2 = register_module("bn2", nn::BatchNorm2d(out));
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor y = torch::relu(b1(c1(x)));
    y = b2(c2(y));
    torch::Tensor s = x;
    if (stride_ != 1 || in_ != out_) {
      // Option A: subsample spatially, zero-pad the new channels (no parameters).
      using torch::indexing::Slice;
      s = x.index({Slice(), Slice(), Slice(torch::indexing::None, torch::indexing::None, stride_),
                   Slice(torch::indexing::None, torch::indexing::None, stride_)});
      const int extra = out_ - in_;
      s = torch::constant_pad_nd(s, {0, 0, 0, 0, extra / 2, extra - extra / 2});
    }
    return torch::relu(y + s);
  }
  nn::Conv2d c1{nullptr}, c2{nullptr};
  nn::BatchNorm2d b1{nullptr}, b2{nullptr};

 private:
  int in_, out_, stride_;
};

class CifarResNet : public Net {
 public:
  CifarResNet(int depth, const ModelSpec& s) {
    const int w = s.base_width > 0 ? s.base_width : 16;
    const int n = (depth - 2) / 6;
    stem = register_module("conv1", conv(s.channels, w, 3, 1, 1));
    bn = register_module("bn1", nn::BatchNorm2d(w));
    int in = w;
    for (int stage = 0; stage < 3; ++stage) {
      const int out = w << stage;
      nn::Sequential layer;
      for (int b = 0; b < n; ++b) {
        layer->push_back(std::make_shared<BlockA>(in, out, (b == 0 && stage > 0) ? 2 : 1));
        in = out;
      }
      stages.push_back(register_module("layer" + std::to_string(stage + 1), layer));
    }
    fc = register_module("fc", nn::Linear(in, s.classes));
    init_weights(*this);
  }
  torch::Tensor forward(torch::Tensor x) override {
    await_parameters(*stem);
    await_parameters(*bn);
    x = torch::relu(bn(stem(x)));
    for (auto& layer : stages) x = gated(layer, x);
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    await_parameters(*fc);
    return fc(x);
  }

 private:
  nn::Conv2d stem{nullptr};
  nn::BatchNorm2d bn{nullptr};
  std::vector<nn::Sequential> stages;
  nn::Linear fc{nullptr};
};

// ---- ImageNet-style ResNets (option B projection shortcuts) ---------------------
class BlockB : public nn::Module {
 public:
  /// bottleneck = false: two 3x3 convs (expansion 1); true: 1x1-3x3-1x1 (expansion 4,
  /// stride on the 3x3 as in torchvision's "ResNet v1.5").
  BlockB(int in, int planes, int stride, bool bottleneck) {
    const int out = bottleneck ? planes * 4 : planes;
    if (bottleneck) {
      convs.push_back(register_module("conv1", conv(in, planes, 1, 1, 0)));
      bns.push_back(register_module("bn1", nn::BatchNorm2d(planes)));
      convs.push_back(register_module("conv2", conv(planes, planes, 3, stride, 1)));
      bns.push_back(register_module("bn2", nn::BatchNorm2d(planes)));
      convs.push_back(register_module("conv3", conv(planes, out, 1, 1, 0)));
      bns.push_back(register_module("bn3", nn::BatchNorm2d(out)));
    } else {
      convs.push_back(register_module("conv1", conv(in, planes, 3, stride, 1)));
      bns.push_back(register_module("bn1", nn::BatchNorm2d(planes)));
      convs.push_back(register_module("conv2", conv(planes, planes, 3, 1, 1)));
      bns.push_back(register_module("bn2", nn::BatchNorm2d(planes)));
    }
    if (stride != 1 || in != out) {
      downsample = register_module("downsample", nn::Sequential(conv(in, out, 1, stride, 0), nn::BatchNorm2d(out)));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor y = x;
    for (std::size_t i = 0; i < convs.size(); ++i) {
      y = bns[i](convs[i](y));
      if (i + 1 < convs.size()) y = torch::relu(y);
    }
    torch::Tensor s = downsample ? downsample->forward(x) : x;
    return torch::relu(y + s);
  }
  std::vector<nn::Conv2d> convs;
  std::vector<nn::BatchNorm2d> bns;
  nn::Sequential downsample{nullptr};
};

class ImageNetResNet : public Net {
 public:
  ImageNetResNet(std::vector<int> blocks_per_stage, bool bottleneck, const ModelSpec& s) {
    const int w = s.base_width > 0 ? s.base_width : 64;
    stem = register_module("conv1", conv(s.channels, w, 3, 1, 1));
    bn = register_module("bn1", nn::BatchNorm2d(w));
    int in = w;
    for (std::size_t stage = 0; stage < blocks_per_stage.size(); ++stage) {
      const int planes = w << stage;
      nn::Sequential layer;
      for (int b = 0; b < blocks_per_stage[stage]; ++b) {
        layer->push_back(std::make_shared<BlockB>(in, planes, (b == 0 && stage > 0) ? 2 : 1, bottleneck));
        in = bottleneck ? planes * 4 : planes;
      }
      stages.push_back(register_module("layer" + std::to_string(stage + 1), layer));
    }
    fc = register_module("fc", nn::Linear(in, s.classes));
    init_weights(*this);
  }
  torch::Tensor forward(torch::Tensor x) override {
    await_parameters(*stem);
    await_parameters(*bn);
    x = torch::relu(bn(stem(x)));
    for (auto& layer : stages) x = gated(layer, x);
    await_parameters(*fc);
    return fc(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
  }

 private:
  nn::Conv2d stem{nullptr};
  nn::BatchNorm2d bn{nullptr};
  std::vector<nn::Sequential> stages;
  nn::Linear fc{nullptr};
};

// ---- VGG-16 with batch norm -------------------------------------------------------
class Vgg16 : public Net {
 public:
  explicit Vgg16(const ModelSpec& s) {
    const int w = s.base_width > 0 ? s.base_width : 64;
    // Configuration D; 0 marks a 2x2 max-pool.
    const int cfg[] = {1, 1, 0, 2, 2, 0, 4, 4, 4, 0, 8, 8, 8, 0, 8, 8, 8, 0};
    int in = s.channels;
    for (int c : cfg) {
      if (c == 0) {
        features->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2).ceil_mode(true)));
        continue;
      }
      features->push_back(nn::Conv2d(nn::Conv2dOptions(in, c * w, 3).padding(1)));
      features->push_back(nn::BatchNorm2d(c * w));
      features->push_back(nn::ReLU(nn::ReLUOptions(true)));
      in = c * w;
    }
    register_module("features", features);
    fc = register_module("classifier", nn::Linear(in, s.classes));
    init_weights(*this);
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::adaptive_avg_pool2d(gated(features, x), {1, 1}).flatten(1);
    await_parameters(*fc);
    return fc(x);
  }

 private:
  nn::Sequential features;
  nn::Linear fc{nullptr};
};

// ---- small CNN, MLP, logistic regression ------------------------------------------
class SmallCnn : public Net {
 public:
  explicit SmallCnn(const ModelSpec& s) {
    const int w = s.base_width > 0 ? s.base_width : 32;
    c1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(s.channels, w, 3).padding(1)));
    c2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(w, 2 * w, 3).padding(1)));
    const int h = s.height / 4, wd = s.width / 4;
    if (h < 1 || wd < 1) throw ConfigError("cnn needs inputs of at least 4x4 pixels");
    f1 = register_module("fc1", nn::Linear(2 * w * h * wd, 128));
    f2 = register_module("fc2", nn::Linear(128, s.classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    await_parameters(*c1);
    x = torch::max_pool2d(torch::relu(c1(x)), 2);
    await_parameters(*c2);
    x = torch::max_pool2d(torch::relu(c2(x)), 2);
    await_parameters(*f1);
    x = torch::relu(f1(x.flatten(1)));
    await_parameters(*f2);
    return f2(x);
  }

 private:
  nn::Conv2d c1{nullptr}, c2{nullptr};
  nn::Linear f1{nullptr}, f2{nullptr};
};

class Mlp : public Net {
 public:
  explicit Mlp(const ModelSpec& s) {
    const int in = s.channels * s.height * s.width;
    const int w = s.base_width > 0 ? s.base_width : 256;
    f1 = register_module("fc1", nn::Linear(in, w));
    f2 = register_module("fc2", nn::Linear(w, std::max(1, w / 2)));
    f3 = register_module("fc3", nn::Linear(std::max(1, w / 2), s.classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    await_parameters(*f1);
    x = torch::relu(f1(x.flatten(1)));
    await_parameters(*f2);
    x = torch::relu(f2(x));
    await_parameters(*f3);
    return f3(x);
  }

 private:
  nn::Linear f1{nullptr}, f2{nullptr}, f3{nullptr};
};

class LogReg : public Net {
 public:
  explicit LogReg(const ModelSpec& s) {
    fc = register_module("fc", nn::Linear(s.channels * s.height * s.width, s.classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    await_parameters(*fc);
    return fc(x.flatten(1));
  }

 private:
  nn::Linear fc{nullptr};
};

}  // namespace

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names = {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                                                 "resnet18", "resnet34", "resnet50", "vgg16",    "cnn",
                                                 "mlp",      "logreg"};
  return names;
}

std::shared_ptr<Net> make_model(const ModelSpec& s) {
  if (s.channels <= 0 || s.height <= 0 || s.width <= 0 || s.classes < 2) {
    throw ConfigError("model '" + s.name + "': input shape and class count must be positive (classes >= 2)");
  }
  const std::string& n = s.name;
  if (n == "resnet20") return std::make_shared<CifarResNet>(20, s);
  if (n == "resnet32") return std::make_shared<CifarResNet>(32, s);
  if (n == "resnet44") return std::make_shared<CifarResNet>(44, s);
  if (n == "resnet56") return std::make_shared<CifarResNet>(56, s);
  if (n == "resnet110") return std::make_shared<CifarResNet>(110, s);
  if (n == "resnet18") return std::make_shared<ImageNetResNet>(std::vector<int>{2, 2, 2, 2}, false, s);
  if (n == "resnet34") return std::make_shared<ImageNetResNet>(std::vector<int>{3, 4, 6, 3}, false, s);
  if (n == "resnet50") return std::make_shared<ImageNetResNet>(std::vector<int>{3, 4, 6, 3}, true, s);
  if (n == "vgg16") return std::make_shared<Vgg16>(s);
  if (n == "cnn") return std::make_shared<SmallCnn>(s);
  if (n == "mlp") return std::make_shared<Mlp>(s);
  if (n == "logreg") return std::make_shared<LogReg>(s);
  std::string allowed;
  for (const auto& m : model_names()) allowed += (allowed.empty() ? "" : "|") + m;
  throw ConfigError("unknown model '" + n + "'; allowed: " + allowed);
}

std::vector<comm::TensorInfo> model_parameters(const ModelSpec& spec) {
  std::vector<comm::TensorInfo> out;
  auto model = make_model(spec);
  for (const auto& item : model->named_parameters(/*recurse=*/true)) {
    comm::TensorInfo t;
    t.name = item.key();
    t.shape = item.value().sizes().vec();
    t.numel = static_cast<std::uint64_t>(item.value().numel());
    out.push_back(std::move(t));
  }
  return out;
}

std::uint64_t parameter_count(const ModelSpec& spec) {
  std::uint64_t n = 0;
  for (const auto& t : model_parameters(spec)) n += t.numel;
  return n;
}

}  // namespace gradzip::trainer

// ---- flat buffers -----------------------------------------------------------------
#include "trainer/flat_model.h"

namespace gradzip::trainer {

torch::Device parse_device(const std::string& device) {
  if (device == "cpu") return torch::Device(torch::kCPU);
  if (device == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw ConfigError("device '" + device + "' requested but CUDA is not available (this libtorch or machine)");
    }
    int index = 0;
    if (device.size() > 5) {
      const std::string num = device.substr(5);
      if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) {
        throw ConfigError("bad device '" + device + "'; allowed: cpu|cuda|cuda:N");
      }
      index = std::stoi(num);
    }
    if (index >= static_cast<int>(torch::cuda::device_count())) {
      throw ConfigError("device '" + device + "': only " + std::to_string(torch::cuda::device_count()) + " CUDA devices");
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw ConfigError("bad device '" + device + "'; allowed: cpu|cuda|cuda:N|auto");
}

FlatModel::FlatModel(const ModelSpec& spec, torch::Device dev) : net(make_model(spec)), device(dev) {
  net->to(device);
  params = net->parameters(/*recurse=*/true);
  for (const auto& p : params) total_numel += p.numel();
  const auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  flat_params = torch::empty({total_numel}, opts);
  flat_grads = torch::zeros({total_numel}, opts);
  torch::NoGradGuard guard;
  std::int64_t off = 0;
  for (auto& p : params) {
    const std::int64_t n = p.numel();
    torch::Tensor pv = flat_params.narrow(0, off, n).view(p.sizes());
    pv.copy_(p.detach());
    p.set_data(pv);
    p.mutable_grad() = flat_grads.narrow(0, off, n).view(p.sizes());
    off += n;
  }
  if (device.is_cuda()) {
    const auto pinned = torch::TensorOptions().dtype(torch::kFloat32).pinned_memory(true);
    host_params = torch::empty({total_numel}, pinned);
    host_grads = torch::empty({total_numel}, pinned);
    host_params.copy_(flat_params);
  } else {
    host_params = flat_params;
    host_grads = flat_grads;
  }
}

void FlatModel::grads_to_host() {
  if (device.is_cuda()) host_grads.copy_(flat_grads);
}

void FlatModel::params_to_device() {
  if (device.is_cuda()) flat_params.copy_(host_params, /*non_blocking=*/true);
}

}  // namespace gradzip::trainer
