#include "trainer/transport_decorators.h"

#include <algorithm>
#include <string>
#include <thread>

#include "comm/protocol.h"

namespace gradzip::trainer {

ModeledLinkTransport::ModeledLinkTransport(comm::WorkerTransport& inner, double bytes_per_s)
    : ForwardingTransport(inner), bytes_per_s_(bytes_per_s) {}

void ModeledLinkTransport::connect(const comm::ModelSignature& signature, std::uint32_t worker_rank, float* params) {
  inner_.connect(signature, worker_rank, params);
  const comm::TrafficCounters c = inner_.counters();
  down_charged_ = static_cast<double>(c.down.payload_bytes + c.down.framing_bytes);
}

void ModeledLinkTransport::transmit(Clock::time_point* free_at, double bytes) {
  const auto duration = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(bytes / bytes_per_s_));
  *free_at = std::max(Clock::now(), *free_at) + duration;
  std::this_thread::sleep_until(*free_at);
}

void ModeledLinkTransport::before_push(std::uint64_t /*step*/, std::uint32_t /*bucket*/, std::size_t bytes) {
  transmit(&up_free_, static_cast<double>(bytes + comm::kEnvelopeBytes));
}

void ModeledLinkTransport::wait(comm::Handle handle) {
  inner_.wait(handle);
  const comm::TrafficCounters c = inner_.counters();
  const double received = static_cast<double>(c.down.payload_bytes + c.down.framing_bytes);
  if (received > down_charged_) transmit(&down_free_, received - down_charged_);
  down_charged_ = received;
}

void PushTurns::await(std::uint32_t w, std::uint32_t b) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return cancelled_ || pushes_[b] % workers_ == w; });
  if (cancelled_) throw comm::CommError(comm::CommError::Kind::kClosed, "simulation stopped (another worker failed)");
}

void PushTurns::done(std::uint32_t b) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++pushes_[b];
  }
  cv_.notify_all();
}

void PushTurns::cancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
  }
  cv_.notify_all();
}

void OrderedPushTransport::before_push(std::uint64_t /*step*/, std::uint32_t bucket, std::size_t /*bytes*/) {
  turns_.await(rank_, bucket);
}

void FaultyPushTransport::before_push(std::uint64_t step, std::uint32_t bucket, std::size_t /*bytes*/) {
  if (step == fail_step_) {
    throw comm::CommError(comm::CommError::Kind::kIo, "push of bucket " + std::to_string(bucket) + " at step " +
                                                          std::to_string(step) + " failed (injected fault)");
  }
}

}  // namespace gradzip::trainer
