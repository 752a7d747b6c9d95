// Randomized Hadamard rotation of a gradient bucket, x -> H D x: a random-sign diagonal D
// (Rademacher signs from Philox) followed by an orthonormal fast Walsh-Hadamard transform
// H on power-of-two blocks. A rotation spreads a few large coordinates over a whole block,
// so max |x| shrinks towards the l2 norm / sqrt(block) and a max-abs scaled quantizer wastes
// fewer levels (Suresh et al. 2017, "Distributed mean estimation with limited
// communication", ICML; used before homomorphic quantization by THC, Li et al. NSDI'24).
//
// Because H D is linear and orthogonal, the sum of rotated vectors is the rotation of the
// sum: ranks rotate with the SAME context (the signs must agree), quantize, sum, and one
// unrotate after the sum recovers the sum in the original coordinates.
//
// Blocks: elements [0, n) are cut into consecutive blocks of `block` elements (a power of
// two); the remainder n mod block is cut into descending powers of two (its binary digits:
// 1000 = 512 + 256 + 128 + 64 + 32 + 8), so the length never changes and nothing is padded.
// A block of one element is only sign-flipped.
//
// Signs: element i (0-based over the bucket) is negated when bit i % 32 of
// random_bits(ctx, kRotationStream, i / 32) is set (quant/philox.h). kRotationStream is
// stream id 3, after the three RandomStream enumerators the codecs use.
// Precision: rotate then unrotate returns x within about log2(block) fp32 roundings per
// element (|error| <= ~1e-6 * ||block||_2 for block 4096; tests/quant/rotation_test.cc).
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/philox.h"
#include "quant/status.h"

namespace gradzip::quant {

/// The Philox stream of the rotation's signs (RandomStream ids 0..2 belong to the codecs;
/// PowerSGD's initial Q uses 4).
constexpr RandomStream kRotationStream = static_cast<RandomStream>(3);

/// Largest rotation block, in elements (a 4 MiB fp32 block; larger buys nothing).
constexpr std::uint32_t kMaxRotationBlock = 1u << 20;

/// kOk when `block` is a power of two in [2, kMaxRotationBlock], else kInvalidArgument
/// with a message naming the value.
Status check_rotation_block(std::uint32_t block);

/// In place: x[0, n) <- H D x[0, n). `shared` must be equal on every rank that will sum
/// the results (seed, step and bucket; the worker field is part of the key, so pass the
/// same worker value, e.g. 0, on every rank). Thread-safe for distinct x.
Status rotate(float* x, std::size_t n, std::uint32_t block, const SeedContext& shared);

/// In place: x[0, n) <- D H x[0, n), the inverse of rotate with the same arguments.
Status unrotate(float* x, std::size_t n, std::uint32_t block, const SeedContext& shared);

}  // namespace gradzip::quant
