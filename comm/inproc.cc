#include "comm/inproc.h"

#include <chrono>

namespace gradzip::comm {
namespace {

// One worker endpoint: the RequestClient protocol over a mailbox.
class InprocWorker final : public RequestClient {
 public:
  InprocWorker(InprocCluster* cluster, ClientOptions options, std::string peer)
      : RequestClient(std::move(options)), cluster_(cluster), peer_(std::move(peer)),
        box_(std::make_shared<InprocCluster::Mailbox>()) {
    cluster_->register_mailbox(peer_, box_);
  }
  ~InprocWorker() override {
    stop_heartbeats();
    cluster_->unregister_mailbox(peer_);
  }

 protected:
  void open(std::uint32_t, std::uint32_t) override {}
  void send_frames(std::uint32_t shard, const std::vector<FrameView>& frames,
                   const std::vector<SharedBytes>& /*owners: delivery is synchronous*/) override {
    cluster_->deliver(peer_, shard, frames);
  }
  bool receive(double timeout_s, Received* out) override {
    std::unique_lock<std::mutex> lock(box_->mu);
    if (!box_->cv.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return !box_->inbox.empty(); })) {
      return false;
    }
    auto [shard, frames] = std::move(box_->inbox.front());
    box_->inbox.pop_front();
    out->shard = shard;
    out->frames.clear();
    for (const auto& f : frames) out->frames.push_back({f->data(), f->size()});
    out->owner = std::make_shared<std::vector<SharedBytes>>(std::move(frames));
    return true;
  }

 private:
  InprocCluster* cluster_;
  std::string peer_;
  std::shared_ptr<InprocCluster::Mailbox> box_;
};

}  // namespace

InprocCluster::InprocCluster(ModelSignature signature, const PlacementOptions& placement, ShardOptions shard_options,
                             std::uint32_t num_workers)
    : signature_(std::move(signature)) {
  if (signature_.placement.empty()) signature_.placement = placement.canonical();
  layout_ = make_layout(signature_, placement);
  for (std::uint32_t s = 0; s < placement.num_shards; ++s) {
    ShardOptions o = shard_options;
    o.shard_id = s;
    o.num_workers = num_workers;
    shards_.push_back(std::make_unique<Shard>(o, signature_, layout_));
    shard_mu_.push_back(std::make_unique<std::mutex>());
  }
  ticker_ = std::thread([this] {
    while (!stop_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      for (std::uint32_t s = 0; s < shards_.size(); ++s) {
        std::vector<OutMessage> out;
        std::lock_guard<std::mutex> lock(*shard_mu_[s]);
        shards_[s]->tick(Shard::Clock::now(), &out);
        route(s, out);
      }
    }
  });
}

InprocCluster::~InprocCluster() {
  stop_.store(true);
  if (ticker_.joinable()) ticker_.join();
}

std::unique_ptr<RequestClient> InprocCluster::make_worker(ClientOptions client) {
  client.placement = layout_.options;
  return std::make_unique<InprocWorker>(this, std::move(client), "inproc-" + std::to_string(next_peer_++));
}

void InprocCluster::register_mailbox(const std::string& peer, std::shared_ptr<Mailbox> box) {
  std::lock_guard<std::mutex> lock(boxes_mu_);
  boxes_[peer] = std::move(box);
}

void InprocCluster::unregister_mailbox(const std::string& peer) {
  std::lock_guard<std::mutex> lock(boxes_mu_);
  boxes_.erase(peer);
}

void InprocCluster::route(std::uint32_t shard, std::vector<OutMessage>& out) {
  for (auto& m : out) {
    std::shared_ptr<Mailbox> box;
    {
      std::lock_guard<std::mutex> lock(boxes_mu_);
      auto it = boxes_.find(m.peer);
      if (it == boxes_.end()) continue;  // worker gone: like a closed socket
      box = it->second;
    }
    {
      std::lock_guard<std::mutex> lock(box->mu);
      box->inbox.emplace_back(shard, std::move(m.frames));
    }
    box->cv.notify_one();
  }
}

void InprocCluster::deliver(const std::string& peer, std::uint32_t shard, const std::vector<FrameView>& frames) {
  if (shard >= shards_.size()) return;
  std::vector<OutMessage> out;
  std::lock_guard<std::mutex> lock(*shard_mu_[shard]);
  shards_[shard]->handle(peer, frames.data(), frames.size(), Shard::Clock::now(), &out);
  route(shard, out);
}

std::vector<float> InprocCluster::gather_params() const { return gather(false); }

std::vector<float> InprocCluster::gather_replica() const { return gather(true); }

std::vector<float> InprocCluster::gather(bool replica) const {
  std::vector<float> flat(layout_.total_numel, 0.0f);
  for (std::uint32_t s = 0; s < shards_.size(); ++s) {
    std::lock_guard<std::mutex> lock(*shard_mu_[s]);
    const auto& p = replica ? shards_[s]->replica() : shards_[s]->params();
    for (auto id : layout_.shard_buckets[s]) {
      const Bucket& b = layout_.buckets[id];
      std::copy(p.begin() + static_cast<std::ptrdiff_t>(b.shard_offset),
                p.begin() + static_cast<std::ptrdiff_t>(b.shard_offset + b.numel),
                flat.begin() + static_cast<std::ptrdiff_t>(b.offset));
    }
  }
  return flat;
}

ShardStats InprocCluster::shard_stats(std::uint32_t shard) const {
  std::lock_guard<std::mutex> lock(*shard_mu_.at(shard));
  return shards_[shard]->stats();
}

}  // namespace gradzip::comm
