// CollectiveTransport start-up and checkpoints (comm/collective_transport.h): the
// fingerprint every rank compares, the broadcast of rank 0's parameters or checkpoint,
// and rank 0's checkpoint writes.
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "comm/checkpoint.h"
#include "comm/collective_transport.h"
#include "comm/protocol.h"

namespace gradzip::comm {
namespace {

/// What must be equal on every rank, as JSON text; "signature" holds the model signature.
std::string fingerprint(const ModelSignature& signature, const CollectiveTransportOptions& o) {
  return nlohmann::json{{"signature", signature_to_json(signature)},
                        {"aggregation", collective_mode_name(o.mode)},
                        {"aggregation_spec", o.aggregation_spec},
                        {"seed", o.seed},
                        {"engine", o.collective.engine},
                        {"ranks", o.collective.size},
                        {"optimizer", o.optimizer.canonical()},
                        {"checkpoint_every", o.checkpoint_every},
                        {"restore_step", o.restore_step}}
      .dump();
}

/// The first difference between two fingerprints in words, "" when equal.
std::string fingerprint_diff(const std::string& mine, const std::string& theirs) {
  if (mine == theirs) return "";
  const auto a = nlohmann::json::parse(mine, nullptr, false);
  const auto b = nlohmann::json::parse(theirs, nullptr, false);
  if (a.is_discarded() || b.is_discarded() || !b.is_object()) return "a malformed fingerprint";
  for (auto it = a.begin(); it != a.end(); ++it) {
    if (!b.contains(it.key())) return it.key() + " missing";
    if (b[it.key()] == it.value()) continue;
    if (it.key() == "signature" && b["signature"].is_string()) {
      ModelSignature sa, sb;
      std::string why;
      const std::string ta = it.value().get<std::string>(), tb = b["signature"].get<std::string>();
      if (signature_from_json(reinterpret_cast<const std::uint8_t*>(ta.data()), ta.size(), &sa, &why) &&
          signature_from_json(reinterpret_cast<const std::uint8_t*>(tb.data()), tb.size(), &sb, &why)) {
        const std::string d = sa.diff(sb);
        if (!d.empty()) return d;
      }
      return "model signature differs";
    }
    return it.key() + " " + it.value().dump() + " vs " + b[it.key()].dump();
  }
  return "fingerprints differ";
}

}  // namespace

void CollectiveTransport::check_fingerprint(const ModelSignature& signature) {
  const std::string mine = fingerprint(signature, o_);
  const auto all = allgather_blobs(*coll_, reinterpret_cast<const std::uint8_t*>(mine.data()), mine.size());
  // Every rank compares each rank with rank 0 (and itself with rank 0), so all of them
  // fail alike and name the same pair.
  const std::string reference(all[0].begin(), all[0].end());
  for (std::uint32_t r = 1; r < all.size(); ++r) {
    const std::string theirs(all[r].begin(), all[r].end());
    const std::string d = fingerprint_diff(reference, theirs);
    if (!d.empty()) {
      throw CollectiveError(CommError::Kind::kRefused, static_cast<int>(r),
                            fmt::format("configuration mismatch between rank 0 and rank {} (rank {} speaking): {}", r,
                                        coll_->rank(), d));
    }
  }
}

void CollectiveTransport::share_initial_state(const ModelSignature& signature, float* params) {
  const std::uint64_t n = signature.total_numel();
  params_.assign(n, 0.0f);
  momentum_.assign(n, 0.0f);
  signature_hash_ = signature_hash(signature);
  // Rank 0 says first whether it has the state (a restore can fail); the others must not
  // wait for a broadcast that will not come.
  std::uint64_t status[2] = {1, 0};  // ok, step
  std::string problem;
  if (coll_->rank() == 0) {
    if (o_.restore_step > 0) {
      ShardCheckpoint ckpt;
      std::vector<std::string> skipped;
      if (!load_newest_checkpoint(o_.checkpoint_dir, 0, 1, signature_hash_, n, &ckpt, &skipped, o_.restore_step) ||
          ckpt.version != o_.restore_step) {
        status[0] = 0;
        problem = fmt::format("no valid checkpoint of step {} in {}{}", o_.restore_step, o_.checkpoint_dir,
                              skipped.empty() ? "" : " (skipped: " + skipped.front() + ")");
      } else {
        params_ = std::move(ckpt.params);
        momentum_ = std::move(ckpt.momentum);
        status[1] = ckpt.version;
      }
    } else {
      std::memcpy(params_.data(), params, n * sizeof(float));
    }
  }
  coll_->broadcast(status, sizeof status, 0);
  if (status[0] == 0) {
    throw CollectiveError(CommError::Kind::kRefused, 0,
                          coll_->rank() == 0 ? problem : "rank 0 could not restore its checkpoint (see its log)");
  }
  coll_->broadcast(params_.data(), n * sizeof(float), 0);
  if (o_.restore_step > 0) coll_->broadcast(momentum_.data(), n * sizeof(float), 0);
  resume_step_ = status[1];
  last_checkpoint_ = resume_step_;
  std::memcpy(params, params_.data(), n * sizeof(float));
  spdlog::info("collective {}: rank {} of {} ready at step {} ({} buckets)", collective_mode_name(o_.mode),
               coll_->rank(), coll_->size(), resume_step_, layout_.buckets.size());
}

void CollectiveTransport::maybe_checkpoint(std::uint64_t steps_done) {
  if (coll_->rank() != 0 || o_.checkpoint_dir.empty() || o_.checkpoint_every == 0) return;
  if (steps_done <= last_checkpoint_ || steps_done % o_.checkpoint_every != 0) return;
  ShardCheckpoint ckpt;
  ckpt.shard_id = 0;
  ckpt.num_shards = 1;
  ckpt.version = steps_done;
  ckpt.signature_hash = signature_hash_;
  ckpt.params = params_;
  ckpt.momentum = momentum_;
  ckpt.replica.assign(params_.size(), 0.0f);  // no compressed downlink under collectives
  const std::string path = write_checkpoint(o_.checkpoint_dir, ckpt, o_.keep_checkpoints);
  last_checkpoint_ = steps_done;
  spdlog::debug("collective: rank 0 wrote {}", path);
}

}  // namespace gradzip::comm
