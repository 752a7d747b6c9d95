// In-process transport: M Shards and N worker clients in one process, exchanging the
// same envelope and gradzip message bytes as the ZeroMQ transport, without sockets.
// For the trainer's simulation mode and for tests.
//
//   InprocCluster cluster(signature, placement, shard_options, /*num_workers=*/4);
//   auto t = cluster.make_worker();              // one per worker (thread or loop)
//   t->connect(signature, rank, params);         // WorkerTransport semantics
//
// Threading: each worker transport is driven by one thread at a time (WorkerTransport
// is thread-compatible); different workers may run on different threads. A push is
// handed to the owning shard synchronously (under that shard's mutex), replies go to
// the worker's mailbox. A background thread ticks the shards every 20 ms (worker
// timeouts). In sync mode, a single thread that drives several workers must push all of
// them before waiting on any pull (a pull completes only when every worker pushed).
// The cluster must outlive its worker transports.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "comm/client.h"
#include "comm/layout.h"
#include "comm/shard.h"

namespace gradzip::comm {

class InprocCluster {
 public:
  /// Builds num_shards = placement.num_shards Shards with `shard_options` (shard_id is
  /// set per shard, num_workers overwritten). signature.placement is filled when empty.
  InprocCluster(ModelSignature signature, const PlacementOptions& placement, ShardOptions shard_options,
                std::uint32_t num_workers);
  ~InprocCluster();
  InprocCluster(const InprocCluster&) = delete;
  InprocCluster& operator=(const InprocCluster&) = delete;

  /// A new worker endpoint; call connect() on it with its rank. `client` may set
  /// timeouts and fault injection; its placement is overwritten with the cluster's.
  std::unique_ptr<RequestClient> make_worker(ClientOptions client = {});

  /// The full flat parameter vector assembled from the shards (tests).
  std::vector<float> gather_params() const;
  /// The same for the replica the workers hold (Shard::replica(); compressed downlink).
  std::vector<float> gather_replica() const;
  ShardStats shard_stats(std::uint32_t shard) const;
  const Layout& layout() const { return layout_; }
  const ModelSignature& signature() const { return signature_; }

  // Internal (used by the worker endpoints).
  struct Mailbox {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::pair<std::uint32_t, std::vector<SharedBytes>>> inbox;
  };
  void deliver(const std::string& peer, std::uint32_t shard, const std::vector<FrameView>& frames);
  void register_mailbox(const std::string& peer, std::shared_ptr<Mailbox> box);
  void unregister_mailbox(const std::string& peer);

 private:
  void route(std::uint32_t shard, std::vector<OutMessage>& out);
  std::vector<float> gather(bool replica) const;
  ModelSignature signature_;
  Layout layout_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<std::unique_ptr<std::mutex>> shard_mu_;
  mutable std::mutex boxes_mu_;
  std::map<std::string, std::shared_ptr<Mailbox>> boxes_;
  std::atomic<std::uint64_t> next_peer_{0};
  std::atomic<bool> stop_{false};
  std::thread ticker_;
};

}  // namespace gradzip::comm
