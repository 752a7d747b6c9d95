// Cluster description: which processes are shards and which are workers, and where.
//
// Cluster file (JSON, like TensorFlow's ClusterSpec):
//   { "ps": ["10.0.0.1:5555", "10.0.0.2:5555"], "worker": ["10.0.0.3:0", "10.0.0.4:0"] }
// "ps" lists the shard endpoints (shard i binds the port of entry i on all interfaces,
// workers connect to it); "worker" entries name the worker hosts (ports unused). A run
// whose workers aggregate among themselves (--aggregation allreduce etc.) has no shards:
// "ps": [] and worker r listens for its peers on the host of "worker" entry r.
//
// Under a launcher (srun, mpirun) every process learns its global rank and the world
// size from the environment; ranks [0, M) become shards, ranks [M, M + N) workers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gradzip::comm {

struct ClusterSpec {
  std::vector<std::string> shards;   ///< "host:port"; may be empty (no parameter server)
  std::vector<std::string> workers;  ///< "host:port"
  std::string origin;                ///< "cluster file <path>", for messages
  /// "tcp://host:port" endpoints of the shards (what workers connect to); throws
  /// std::runtime_error naming the file when "ps" is empty.
  std::vector<std::string> shard_endpoints() const;
};

/// Parses a cluster file; throws std::runtime_error naming the file and what is wrong
/// (a missing "ps" or "worker" array, an entry that is not host:port, a port outside
/// 0..65535).
ClusterSpec load_cluster_file(const std::string& path);
ClusterSpec parse_cluster_json(const std::string& text, const std::string& origin = "cluster file");

/// The host of a "host:port" entry ("[::1]:0" gives "::1").
std::string host_of(const std::string& host_port);

/// Rank and world size given by a launcher.
struct LauncherRank {
  bool found = false;
  std::uint32_t rank = 0;
  std::uint32_t size = 1;
  std::string source;  ///< "slurm", "openmpi", "pmi" or "" when not found
};

/// The one place gradzip reads launcher environment variables: SLURM_PROCID /
/// SLURM_NTASKS (Slurm srun), OMPI_COMM_WORLD_RANK / OMPI_COMM_WORLD_SIZE (Open MPI),
/// PMI_RANK / PMI_SIZE (MPICH, Intel MPI). The first complete pair wins in that order;
/// a malformed value (not a number, rank >= size) is ignored with found == false.
LauncherRank rank_from_environment();

/// Role of a global rank with `num_shards` shards: shard id, or worker rank.
struct Role {
  bool is_shard = false;
  std::uint32_t index = 0;  ///< shard id or worker rank
};
Role role_of_rank(std::uint32_t rank, std::uint32_t num_shards);

}  // namespace gradzip::comm
