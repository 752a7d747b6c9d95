// Server-side aggregation helper of the "sign" codec: majority vote (Bernstein, Zhao,
// Azizzadenesheli, Anandkumar 2019, "signSGD with majority vote is communication
// efficient and fault tolerant", ICLR, Algorithm 1: the server sends sign(sum_m sign(g_m))).
#pragma once

#include <cstddef>

namespace gradzip::quant {

/// Majority vote over accumulated signs: acc[i] = sign(acc[i]) in {-1, 0, +1}, in place.
/// `acc` holds the sum of the workers' decoded "sign" messages (each element +-1), built
/// with decode_add (any positive scale: only the sign of the sum matters). A tie (sum 0,
/// possible with an even number of workers) gives 0, i.e. no step for that coordinate.
/// NaN (never produced by decode_add of valid messages, but a hand-crafted fp32 vote on a
/// shard can carry one) counts as no vote: 0, so data from the wire never reaches the
/// parameters as NaN. Thread-compatible.
void majority_vote(float* acc, std::size_t n);

}  // namespace gradzip::quant
