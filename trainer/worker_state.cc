// Worker checkpoints of the trainer (see worker_state.h).
#include "trainer/worker_state.h"

#include <cstring>

#include "comm/checkpoint.h"

namespace gradzip::trainer {
namespace {

/// Every buffer of `net` (named_buffers order), each as its contiguous CPU bytes.
std::vector<std::uint8_t> buffer_bytes(torch::nn::Module& net) {
  std::vector<std::uint8_t> out;
  for (const auto& b : net.named_buffers()) {
    const torch::Tensor t = b.value().detach().to(torch::kCPU).contiguous();
    const auto* p = static_cast<const std::uint8_t*>(t.data_ptr());
    out.insert(out.end(), p, p + t.nbytes());
  }
  return out;
}

}  // namespace

void save_worker_state(const TrainConfig& config, std::uint64_t signature_hash, std::uint32_t rank,
                       std::uint64_t step, const std::vector<quant::MemoryState>& memory, torch::nn::Module& net,
                       comm::WorkerTransport& transport) {
  comm::WorkerCheckpoint c;
  c.worker = rank;
  c.num_workers = config.workers;
  c.step = step;
  c.signature_hash = signature_hash;
  c.memory = memory;
  c.model_state = buffer_bytes(net);
  c.transport_state = transport.save_state();
  comm::write_worker_checkpoint(config.checkpoint_dir, c);
}

void restore_worker_state(const TrainConfig& config, std::uint64_t signature_hash, const comm::Layout& layout,
                          std::uint32_t rank, std::vector<quant::MemoryState>* memory, torch::nn::Module& net,
                          comm::WorkerTransport& transport) {
  std::vector<std::uint64_t> numel;
  for (const auto& b : layout.buckets) numel.push_back(b.numel);
  comm::WorkerCheckpoint c = comm::load_worker_checkpoint(config.checkpoint_dir, rank, config.workers,
                                                          config.resume_step, signature_hash, numel);
  std::size_t want = 0;
  for (const auto& b : net.named_buffers()) want += b.value().nbytes();
  if (c.model_state.size() != want) {
    throw comm::CheckpointError(comm::CheckpointError::Kind::kMismatch,
                                comm::worker_checkpoint_path(config.checkpoint_dir, rank, config.resume_step),
                                "model state of " + std::to_string(c.model_state.size()) + " bytes, this model's " +
                                    "buffers need " + std::to_string(want));
  }
  const std::string path = comm::worker_checkpoint_path(config.checkpoint_dir, rank, config.resume_step);
  try {
    transport.restore_state(c.transport_state);
  } catch (const comm::CommError& e) {  // a state that does not fit is the checkpoint's fault
    if (e.kind() != comm::CommError::Kind::kInvalidArgument) throw;
    throw comm::CheckpointError(comm::CheckpointError::Kind::kMismatch, path, e.what());
  }
  torch::NoGradGuard no_grad;
  std::size_t pos = 0;
  for (auto& b : net.named_buffers()) {
    torch::Tensor host = torch::empty_like(b.value(), torch::TensorOptions().device(torch::kCPU)).contiguous();
    std::memcpy(host.data_ptr(), c.model_state.data() + pos, host.nbytes());
    b.value().copy_(host);
    pos += host.nbytes();
  }
  *memory = std::move(c.memory);
}

}  // namespace gradzip::trainer
