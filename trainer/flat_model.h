// A model replica whose parameters and gradients live in two flat contiguous buffers
// (tensor fusion, as in Horovod and PyTorch DDP's gradient buckets). Internal to
// trainer/ and its tests: includes torch.
//
// Every parameter's data is a view into `flat_params` and every parameter's .grad is a
// view into `flat_grads`, set before the first backward. Autograd's AccumulateGrad adds
// into an existing .grad in place, so backward writes straight into the flat buffer: no
// copy after backward (tests check the data pointers). The pull from the parameter
// server writes into `host_params`; on CPU that *is* `flat_params`, on CUDA it is a
// pinned mirror copied to the device by params_to_device().
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "trainer/model_zoo.h"

namespace gradzip::trainer {

/// "cpu", "cuda", "cuda:N", "auto" (cuda:0 when CUDA is available, else cpu). Throws
/// ConfigError for other text or when CUDA is requested but not available in this
/// build/machine.
torch::Device parse_device(const std::string& device);

class FlatModel {
 public:
  /// Builds the model of `spec` on `device` and moves its parameters into flat buffers
  /// (order: named_parameters(), the same as model_parameters(spec)).
  FlatModel(const ModelSpec& spec, torch::Device device);

  std::shared_ptr<Net> net;
  torch::Device device;
  std::int64_t total_numel = 0;
  torch::Tensor flat_params;  ///< [total_numel] float32 on `device`
  torch::Tensor flat_grads;   ///< [total_numel] float32 on `device`
  torch::Tensor host_params;  ///< CPU: == flat_params; CUDA: pinned host mirror
  torch::Tensor host_grads;   ///< CPU: == flat_grads; CUDA: pinned host mirror
  std::vector<torch::Tensor> params;  ///< the parameters, in flat order

  /// host_grads <- flat_grads (no-op on CPU).
  void grads_to_host();
  /// flat_params <- host_params (no-op on CPU).
  void params_to_device();
};

}  // namespace gradzip::trainer
