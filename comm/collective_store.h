// A fresh rendezvous store for ranks that no launcher prepares: ranks started by srun,
// mpirun or by hand on several hosts (--cluster FILE|slurm|mpi) share a directory on a
// shared file system, but no process clears it before they start, and a store left by
// an earlier start would pair them with dead addresses (comm/collective.h).
//
// Rank 0 opens a new directory <base>/start-<random> and keeps a beacon beating in it
// (a comm::Heartbeat of <base>/start-<random>/beacon), then names it in <base>/current
// (written to a temporary file and renamed). Every other rank reads <base>/current and
// joins the directory it names once that beacon is seen to advance: a directory left by
// a dead rank 0 has a still beacon, so a late or restarted rank never joins it. Nothing
// depends on the hosts' clocks.
#pragma once

#include <memory>
#include <string>

#include "comm/collective_health.h"

namespace gradzip::comm {

/// Rank 0's fresh store: the directory to pass as CollectiveOptions::store_dir, and the
/// beacon, which must live until every rank has joined (RAII).
struct FreshStore {
  std::string dir;
  std::unique_ptr<Heartbeat> beacon;
};

/// Rank 0: removes the start-* directories of earlier starts under `base`, opens a new
/// one with its beacon (period `period_s`) and names it in <base>/current. Throws
/// CollectiveError (kIo) naming the path it cannot write.
FreshStore open_fresh_store(const std::string& base, double period_s);

/// Every other rank: the directory rank 0 opened under `base`, once its beacon advances
/// (observed for 3 periods at a time). Throws CollectiveError (kTimeout, blaming rank 0)
/// when none appears within `timeout_s`.
std::string join_fresh_store(const std::string& base, double period_s, double timeout_s);

}  // namespace gradzip::comm
