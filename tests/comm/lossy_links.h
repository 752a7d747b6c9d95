// Emulated lossy links for the comm tests, built from network namespaces, veth pairs
// and nftables (this kernel has no sch_netem; nftables' `numgen random mod 100 < N
// drop` gives random loss, a `drop` rule cuts a link).
//
//   hub namespace "<id>h"            spoke namespace "<id>s<i>"
//   hv<i> 10.89.<i>.1/24  <--veth-->  eth0 10.89.<i>.2/24
//
// The hub holds the shard processes (bound to 0.0.0.0), spoke i one worker; every rule
// sits in the spoke's namespace, on its input and output hooks, so a loss or a cut
// applies to both directions of that worker's link (requests and replies). Counters in
// every rule say how many packets were dropped.
//
// RAII: the destructor deletes the namespaces (which destroys the veths and rules).
// Needs root, `ip` (iproute2) and `nft` (nftables). Names embed the owner's pid;
// remove_stale() deletes those of dead owners. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gradzip::comm::testing {

class LossyStar {
 public:
  /// Empty when a LossyStar can be built here; otherwise why not (for GTEST_SKIP).
  static std::string unavailable_reason();
  /// Deletes namespaces left by owners that no longer exist; returns how many.
  static std::size_t remove_stale();

  /// Builds the hub and `spokes` spokes. Throws std::runtime_error (after removing what
  /// it built) naming the failed command and its output.
  explicit LossyStar(std::uint32_t spokes);
  ~LossyStar();
  LossyStar(const LossyStar&) = delete;
  LossyStar& operator=(const LossyStar&) = delete;

  const std::string& hub() const { return hub_; }
  const std::string& spoke(std::uint32_t i) const { return spokes_.at(i); }
  /// Address of the hub's end of link i (what worker i connects to).
  std::string hub_address(std::uint32_t i) const;
  /// argv prefix that runs a command inside namespace `ns`.
  static std::vector<std::string> in_namespace(const std::string& ns);

  /// Random loss of `percent` (0..100) packets per direction on link i.
  void set_loss(std::uint32_t i, unsigned percent);
  /// Cuts link i completely (both directions) until heal(i); the loss rule stays.
  void cut(std::uint32_t i);
  void heal(std::uint32_t i);
  /// Packets dropped on link i so far, by the loss rule and by cuts (both directions).
  std::uint64_t dropped(std::uint32_t i) const;

 private:
  void build();
  void teardown() noexcept;
  /// Empties a chain of spoke i, keeping the count of what its rules dropped.
  void flush(std::uint32_t i, const char* chain);
  /// Packets dropped by the rules now in `chain` of spoke i ("" = every chain).
  std::uint64_t counted(std::uint32_t i, const std::string& chain) const;
  std::string hub_;
  std::vector<std::string> spokes_;
  std::vector<std::string> created_;
  std::vector<std::uint64_t> flushed_drops_;  // per spoke: drops of rules since flushed
};

}  // namespace gradzip::comm::testing
