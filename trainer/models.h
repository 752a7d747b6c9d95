// The model zoo, seen without torch: names, shapes and parameter lists.
//
// Models (all take N x C x H x W float input and return N x classes logits):
//   resnet20/32/44/56/110  He et al. 2016, sec. 4.2: 3 stages of 16/32/64 channels,
//                          n = (depth-2)/6 basic blocks per stage, option A shortcuts
//                          (identity; stride-2 subsampling and zero-padded channels, no
//                          extra parameters), so resnet20 has 0.27M parameters as published.
//   resnet18/34/50         He et al. 2016 ImageNet architectures (basic / bottleneck
//                          blocks, projection shortcuts = option B) with a small-image
//                          stem: one 3x3 stride-1 convolution and no max-pool.
//   vgg16                  Simonyan & Zisserman 2015, configuration D, with batch norm
//                          (Ioffe & Szegedy 2015) after every convolution; pooling with
//                          ceil mode and a global average pool, then one linear layer
//                          (the CIFAR variant; about 14.7M parameters for 10 classes).
//   cnn                    two 3x3 conv (32, 64 channels) + max-pool layers, FC 128, FC classes.
//   mlp                    784-style fully connected net: in -> 256 -> 128 -> classes.
//   logreg                 multinomial logistic regression (ZipML's linear case,
//                          Zhang et al. 2017): one linear layer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "comm/transport.h"

namespace gradzip::trainer {

/// What a model is built for: input shape and class count (from the data set), plus an
/// optional width override used by tests to shrink models (0 = the published width;
/// otherwise the base channel count: resnet-cifar 16, resnet18/34/50 64, vgg16 64, cnn 32).
struct ModelSpec {
  std::string name = "resnet20";
  int channels = 3;
  int height = 32;
  int width = 32;
  int classes = 10;
  int base_width = 0;
};

/// Every model name accepted by ModelSpec::name.
const std::vector<std::string>& model_names();

/// The model's trainable parameters (names as in its state dict, shapes, numel) in the
/// order the trainer lays them out in its flat buffer. Builds the model once (cheap
/// except for the largest models). Throws ConfigError for an unknown name.
std::vector<comm::TensorInfo> model_parameters(const ModelSpec& spec);

/// Total number of trainable parameters.
std::uint64_t parameter_count(const ModelSpec& spec);

}  // namespace gradzip::trainer
