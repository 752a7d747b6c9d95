// CollectiveTransport: the communication thread and the per-bucket aggregation modes
// (comm/collective_transport.h). Start-up (fingerprint, state broadcast, checkpoints):
// collective_transport_setup.cc.
#include "comm/collective_transport.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "comm/accounting.h"
#include "quant/half.h"
#include "quant/registry.h"
#include "quant/spec.h"

namespace gradzip::comm {
namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

const char* collective_mode_name(CollectiveMode m) {
  switch (m) {
    case CollectiveMode::kAllreduce:
      return "allreduce";
    case CollectiveMode::kAllgather:
      return "allgather";
    case CollectiveMode::kHomomorphic:
      return "homomorphic";
    case CollectiveMode::kPowerSgd:
      return "powersgd";
  }
  return "?";
}

CollectiveMode parse_collective_mode(const std::string& name) {
  if (name == "allreduce") return CollectiveMode::kAllreduce;
  if (name == "allgather") return CollectiveMode::kAllgather;
  if (name == "homomorphic") return CollectiveMode::kHomomorphic;
  if (name == "powersgd") return CollectiveMode::kPowerSgd;
  throw std::invalid_argument("unknown collective aggregation '" + name +
                              "' (allowed: allreduce, allgather, homomorphic, powersgd)");
}

CollectiveTransport::CollectiveTransport(CollectiveTransportOptions options) : o_(std::move(options)) {
  if (o_.placement.num_shards != 1) {
    throw std::invalid_argument("collective aggregation uses no shards: the layout must have 1 shard, not " +
                                std::to_string(o_.placement.num_shards));
  }
}

CollectiveTransport::~CollectiveTransport() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CollectiveTransport::connect(const ModelSignature& signature, std::uint32_t worker_rank, float* params) {
  if (worker_rank != o_.collective.rank) {
    throw std::invalid_argument(fmt::format("worker rank {} is not the collective rank {}", worker_rank,
                                            o_.collective.rank));
  }
  layout_ = make_layout(signature, o_.placement);
  identity_ = quant::make_codec("identity");
  for (const std::string& spec : layout_.specs) {
    uplinks_.push_back(quant::make_codec(quant::parse_compressor_spec(spec).codec));
    if (o_.mode != CollectiveMode::kAllreduce) continue;
    switch (uplinks_.back()->id()) {
      case quant::CodecId::kIdentity:
        spec_dtype_.push_back(DType::kFloat32);
        break;
      case quant::CodecId::kFp16:
        spec_dtype_.push_back(DType::kFloat16);
        break;
      case quant::CodecId::kBf16:
        spec_dtype_.push_back(DType::kBFloat16);
        break;
      default:
        throw std::invalid_argument("--aggregation allreduce sums fp32, fp16 or bf16 buckets: the compressor must be "
                                    "identity, fp16 or bf16, not '" +
                                    uplinks_.back()->spec() + "' (--aggregation allgather gathers any codec's messages)");
    }
  }
  std::uint64_t largest = 0;
  for (const Bucket& b : layout_.buckets) largest = std::max(largest, b.numel);
  grad_.resize(largest);
  half_.resize(largest);
  coll_ = make_collective(o_.collective);
  check_fingerprint(signature);
  share_initial_state(signature, params);
  if (o_.mode == CollectiveMode::kHomomorphic || o_.mode == CollectiveMode::kPowerSgd) setup_aggregation_only(signature);
  thread_ = std::thread([this] { comm_loop(); });
}

Handle CollectiveTransport::enqueue(Job job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!coll_) throw CommError(CommError::Kind::kInvalidArgument, "collective transport used before connect()");
  job.handle = next_handle_++;
  queue_.push_back(job);
  cv_.notify_all();
  return job.handle;
}

void CollectiveTransport::check_bucket(const char* op, std::uint32_t bucket) const {
  if (bucket >= layout_.buckets.size()) {
    throw CommError(CommError::Kind::kInvalidArgument,
                    fmt::format("{} of bucket {}: the layout has {} buckets", op, bucket, layout_.buckets.size()));
  }
}

Handle CollectiveTransport::push(std::uint64_t step, std::uint32_t bucket, const std::uint8_t* msg, std::size_t bytes) {
  check_bucket("push", bucket);
  return enqueue(Job::push(step, bucket, msg, bytes));
}

Handle CollectiveTransport::pull(std::uint64_t step, float* params) {
  return enqueue(Job::pull(step, params));
}

Handle CollectiveTransport::pull_bucket(std::uint64_t step, std::uint32_t bucket, float* params, bool /*dense*/) {
  check_bucket("pull", bucket);
  return enqueue(Job::pull_bucket(step, bucket, params));
}

void CollectiveTransport::abort() {
  std::lock_guard<std::mutex> lock(mu_);
  aborted_ = true;
  cv_.notify_all();
}

void CollectiveTransport::barrier() {
  wait(enqueue(Job::barrier()));
}

void CollectiveTransport::wait(Handle handle) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return aborted_ || done_.count(handle) > 0; });
  if (aborted_) throw CommError(CommError::Kind::kClosed, "collective transport aborted");
  const std::exception_ptr e = done_[handle];
  done_.erase(handle);
  if (e) std::rethrow_exception(e);
}

void CollectiveTransport::comm_loop() {
  for (;;) {
    Job job;
    std::exception_ptr failed;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      // Stopping: queued jobs are dropped, not run (their message buffers may be gone).
      if (stop_) return;
      job = queue_.front();
      queue_.pop_front();
      failed = failure_;
    }
    if (!failed) {
      try {
        run_job(job);
      } catch (...) {
        failed = std::current_exception();
        std::lock_guard<std::mutex> lock(mu_);
        failure_ = failed;
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    done_[job.handle] = failed;
    cv_.notify_all();
  }
}

void CollectiveTransport::run_job(const Job& job) {
  const auto t0 = Clock::now();
  DirectionCounters* direction = nullptr;
  switch (job.kind) {
    case JobKind::kPush: {
      const Bucket& b = layout_.buckets[job.bucket];
      if (o_.mode == CollectiveMode::kAllreduce) {
        push_allreduce(job, b);
      } else if (o_.mode == CollectiveMode::kAllgather) {
        push_allgather(job, b);
      } else if (o_.mode == CollectiveMode::kHomomorphic && !b.compressed) {
        push_allreduce(job, b);  // small buckets go fp32, as on every other path
      } else {  // aggregation-only modes: the message is the fp32 gradient
        float* g = grad_.data();
        const quant::Status st = identity_->decode(job.msg, job.bytes, g, b.numel);
        if (!st.ok()) {
          throw CommError(CommError::Kind::kInvalidArgument,
                          fmt::format("bucket {} step {}: own message does not decode: {}", b.id, job.step, st.to_string()));
        }
        if (o_.mode == CollectiveMode::kHomomorphic) {
          push_homomorphic(job, b, g);
        } else {
          push_powersgd(job, b, g);
        }
      }
      // A step is complete once all its buckets were applied: then rank 0 may checkpoint.
      if (job.step != applied_step_) {
        applied_step_ = job.step;
        applied_buckets_ = 0;
      }
      if (++applied_buckets_ == layout_.buckets.size()) maybe_checkpoint(job.step + 1);
      direction = &traffic_.up;
      break;
    }
    case JobKind::kPull:  // the pushes queued before it ran first (one queue, call order)
      std::memcpy(job.params, params_.data(), params_.size() * sizeof(float));
      direction = &traffic_.down;
      break;
    case JobKind::kPullBucket: {
      const Bucket& b = layout_.buckets[job.bucket];
      std::memcpy(job.params + b.offset, params_.data() + b.offset, b.numel * sizeof(float));
      direction = &traffic_.down;
      break;
    }
    case JobKind::kBarrier:
      coll_->barrier();
      break;
    case JobKind::kSaveState:
      write_state(job.state);
      break;
    case JobKind::kRestoreState:
      read_state(*job.state);
      break;
  }
  if (direction != nullptr) {
    std::lock_guard<std::mutex> lock(counters_mu_);
    ++direction->messages;
    direction->seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  }
}

void CollectiveTransport::push_allreduce(const Job& job, const Bucket& b) {
  const quant::Codec& codec = bucket_codec(b);
  float* g = grad_.data();
  const quant::Status st = codec.decode(job.msg, job.bytes, g, b.numel);
  if (!st.ok()) {
    throw CommError(CommError::Kind::kInvalidArgument,
                    fmt::format("bucket {} step {}: own message does not decode: {}", b.id, job.step, st.to_string()));
  }
  const std::uint32_t R = coll_->size();
  const DType type = b.compressed ? spec_dtype_[b.spec] : DType::kFloat32;
  float* p = params_.data() + b.offset;
  float* m = momentum_.data() + b.offset;
  if (type == DType::kFloat32) {
    coll_->allreduce(g, b.numel, DType::kFloat32, ReduceOp::kSum);
    mean_sgd_step(o_.optimizer, job.step, p, g, m, b.numel, R);
    return;
  }
  // 16-bit: divide first (the sum of R gradients must not overflow fp16), round, sum in
  // the 16-bit type, decode once.
  const float inv = 1.0f / static_cast<float>(R);
  std::uint16_t* h = half_.data();
  const bool fp16 = type == DType::kFloat16;
  for (std::size_t i = 0; i < b.numel; ++i) {
    const float v = R > 1 ? g[i] * inv : g[i];
    h[i] = fp16 ? quant::float_to_fp16(v) : quant::float_to_bf16(v);
  }
  coll_->allreduce(h, b.numel, type, ReduceOp::kSum);
  for (std::size_t i = 0; i < b.numel; ++i) g[i] = fp16 ? quant::fp16_to_float(h[i]) : quant::bf16_to_float(h[i]);
  mean_sgd_step(o_.optimizer, job.step, p, g, m, b.numel, 1);
}

void CollectiveTransport::push_allgather(const Job& job, const Bucket& b) {
  const quant::Codec& codec = bucket_codec(b);
  const auto messages = allgather_blobs(*coll_, job.msg, job.bytes);
  float* g = grad_.data();
  // Rank order, as a shard that received the pushes in rank order: the first message is
  // decoded, the others added, so every rank computes the same bits.
  for (std::uint32_t r = 0; r < messages.size(); ++r) {
    const auto& msg = messages[r];
    const quant::Status st = r == 0 ? codec.decode(msg.data(), msg.size(), g, b.numel)
                                    : codec.decode_add(msg.data(), msg.size(), g, b.numel, 1.0f);
    if (!st.ok()) {
      throw CollectiveError(CommError::Kind::kProtocol, static_cast<int>(r),
                            fmt::format("bucket {} step {}: the message of rank {} does not decode: {}", b.id, job.step,
                                        r, st.to_string()));
    }
  }
  mean_sgd_step(o_.optimizer, job.step, params_.data() + b.offset, g, momentum_.data() + b.offset, b.numel,
                static_cast<std::uint32_t>(messages.size()));
}

TrafficCounters CollectiveTransport::counters() const {
  TrafficCounters t;
  {
    std::lock_guard<std::mutex> lock(counters_mu_);
    t = traffic_;
  }
  if (!coll_) return t;
  // Bytes from the engine's formulas: what this rank sent is "up", what it received "down".
  const CollectiveOpCounters c = coll_->counters().total();
  t.up.payload_bytes = c.sent_bytes;
  t.up.framing_bytes = c.framing_sent_bytes;
  t.down.payload_bytes = c.received_bytes;
  t.down.framing_bytes = c.framing_received_bytes;
  auto tcpip = [](std::uint64_t bytes, std::uint64_t messages) -> std::uint64_t {
    if (messages == 0) return 0;
    return estimate_tcpip_bytes(bytes / messages) * messages;  // messages of the mean size
  };
  t.up.tcpip_bytes = tcpip(c.sent_bytes + c.framing_sent_bytes, c.sends + c.receives);
  t.down.tcpip_bytes = tcpip(c.received_bytes + c.framing_received_bytes, c.sends + c.receives);
  return t;
}

CollectiveCounters CollectiveTransport::collective_counters() const {
  return coll_ ? coll_->counters() : CollectiveCounters{};
}

}  // namespace gradzip::comm
