// Host-side pieces of the "sign" codec: the decoder's checks of a message, shared by the
// CPU codec (sign.cc) and its CUDA twin (sign.cu), and the server-side aggregation helper,
// majority vote (Bernstein, Zhao, Azizzadenesheli, Anandkumar 2019, "signSGD with majority
// vote is communication efficient and fault tolerant", ICLR, Algorithm 1: the server
// sends sign(sum_m sign(g_m))).
#pragma once

#include <cstddef>

#include "quant/bitpack.h"
#include "quant/status.h"
#include "quant/wire.h"

namespace gradzip::quant {

namespace sign {
/// The decoder's checks, run by both twins before anything is written: no params, no
/// flags, payload ceil(n/8) bytes.
inline Status check_message(const MessageView& m) {
  if (m.params_bytes != 0) return Status(Errc::kBadParams, "sign takes no params");
  if (m.flags != 0) return Status(Errc::kBadParams, "unknown header flags");
  if (m.payload_bytes != packed_bytes(m.numel, 1)) return Status(Errc::kBadLength, "payload is not ceil(n/8) bytes");
  return Status::Ok();
}
}  // namespace sign

/// Majority vote over accumulated signs: acc[i] = sign(acc[i]) in {-1, 0, +1}, in place.
/// `acc` holds the sum of the workers' decoded "sign" messages (each element +-1), built
/// with decode_add (any positive scale: only the sign of the sum matters). A tie (sum 0,
/// possible with an even number of workers) gives 0, i.e. no step for that coordinate.
/// NaN (never produced by decode_add of valid messages, but a hand-crafted fp32 vote on a
/// shard can carry one) counts as no vote: 0, so data from the wire never reaches the
/// parameters as NaN. Thread-compatible.
void majority_vote(float* acc, std::size_t n);

}  // namespace gradzip::quant
