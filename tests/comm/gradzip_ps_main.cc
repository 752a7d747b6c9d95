// gradzip-ps: a torch-free shard process for the comm integration tests and benchmarks
// (`gradzip ps` in experiments/ calls the same run_shard_server()).
//   gradzip-ps --shard=0 --shards=2 --workers=4 --sizes=37,5,100 --endpoint-file=F
//              [--compressor=identity] [--downlink=dense] [--strategy=greedy]
//              [--bucket-bytes=N] [--mode=sync|async|ssp] [--slack=S] [--lr=0.1]
//              [--momentum=0] [--nesterov] [--wd=0] [--worker-timeout=S]
//              [--checkpoint-dir=D --checkpoint-every=N] [--restore] [--bind=tcp://127.0.0.1:0]
//              [--stats-file=F] [--curve-key=F --curve-authorized=F] [--idle-exit=S]
#include <cstdio>

#include "comm/zmq_server.h"
#include "tests/comm/flags.h"
#include "tests/comm/lsq.h"

int main(int argc, char** argv) {
  using namespace gradzip::comm;
  try {
    testing::Flags f(argc, argv);
    ShardServerOptions o;
    std::vector<std::uint64_t> sizes;
    for (const auto& s : testing::Flags::split(f.str("sizes", "37,5,100,1,64,13"))) sizes.push_back(std::stoull(s));
    o.signature = testing::lsq_signature(sizes);
    o.signature.compressor_spec = f.str("compressor", "identity");
    o.signature.downlink_spec = f.str("downlink", "dense");
    o.placement.num_shards = static_cast<std::uint32_t>(f.num("shards", 1));
    o.placement.strategy = parse_placement_strategy(f.str("strategy", "greedy"));
    o.placement.bucket_bytes = static_cast<std::uint64_t>(f.num("bucket-bytes", 4 << 20));
    o.placement.min_compress_numel = static_cast<std::uint64_t>(f.num("min-compress", 0));
    o.shard.shard_id = static_cast<std::uint32_t>(f.num("shard", 0));
    o.shard.num_workers = static_cast<std::uint32_t>(f.num("workers", 1));
    o.shard.mode = parse_sync_mode(f.str("mode", "sync"));
    o.shard.ssp_slack = static_cast<std::uint32_t>(f.num("slack", 0));
    o.shard.optimizer.lr = f.num("lr", 0.1);
    o.shard.optimizer.momentum = f.num("momentum", 0.0);
    o.shard.optimizer.nesterov = f.has("nesterov");
    o.shard.optimizer.weight_decay = f.num("wd", 0.0);
    o.shard.worker_timeout_s = f.num("worker-timeout", 0.0);
    o.shard.checkpoint_dir = f.str("checkpoint-dir");
    o.shard.checkpoint_every = static_cast<std::uint64_t>(f.num("checkpoint-every", 0));
    o.shard.restore = f.has("restore");
    o.bind = f.str("bind", "tcp://127.0.0.1:0");
    o.endpoint_file = f.str("endpoint-file");
    o.stats_file = f.str("stats-file");
    o.stats_interval_s = f.num("stats-interval", 1.0);
    o.curve_key_file = f.str("curve-key");
    o.curve_authorized_keys_file = f.str("curve-authorized");
    o.idle_exit_s = f.num("idle-exit", 120.0);
    return run_shard_server(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gradzip-ps: %s\n", e.what());
    return 2;
  }
}
