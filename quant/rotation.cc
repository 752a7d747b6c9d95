// Randomized Hadamard rotation (quant/rotation.h).
#include "quant/rotation.h"

#include <cmath>
#include <cstring>
#include <string>

namespace gradzip::quant {
namespace {

/// Orthonormal fast Walsh-Hadamard transform of x[0, m), m a power of two: the Sylvester
/// butterflies (a, b) -> (a + b, a - b) over log2(m) passes, then a scale of 1/sqrt(m)
/// so that applying it twice is the identity.
void fwht(float* __restrict x, std::size_t m) {
  for (std::size_t h = 1; h < m; h *= 2) {
    for (std::size_t i = 0; i < m; i += 2 * h) {
      float* __restrict lo = x + i;
      float* __restrict hi = x + i + h;
      for (std::size_t j = 0; j < h; ++j) {
        const float a = lo[j];
        const float b = hi[j];
        lo[j] = a + b;
        hi[j] = a - b;
      }
    }
  }
  const float norm = static_cast<float>(1.0 / std::sqrt(static_cast<double>(m)));
  for (std::size_t j = 0; j < m; ++j) x[j] *= norm;
}

/// x[i] <- -x[i] where element i's sign bit is set (see the header for the bit order).
void flip_signs(float* x, std::size_t n, const SeedContext& ctx) {
  for (std::size_t w = 0; w * 32 < n; ++w) {
    const std::uint32_t bits = random_bits(ctx, kRotationStream, w);
    const std::size_t first = w * 32;
    const std::size_t count = n - first < 32 ? n - first : 32;
    for (std::size_t j = 0; j < count; ++j) {
      // Negation as an XOR of the sign bit keeps the loop branch-free.
      const std::uint32_t mask = ((bits >> j) & 1u) << 31;
      std::uint32_t u;
      std::memcpy(&u, x + first + j, 4);
      u ^= mask;
      std::memcpy(x + first + j, &u, 4);
    }
  }
}

/// Applies fwht to every block of the layout in the header.
void transform_blocks(float* x, std::size_t n, std::size_t block) {
  std::size_t at = 0;
  for (; at + block <= n; at += block) fwht(x + at, block);
  for (std::size_t m = block / 2; m >= 1 && at < n; m /= 2) {
    if (n - at >= m) {
      fwht(x + at, m);
      at += m;
    }
  }
}

}  // namespace

Status check_rotation_block(std::uint32_t block) {
  if (block < 2 || block > kMaxRotationBlock || (block & (block - 1)) != 0) {
    return Status(Errc::kInvalidArgument, "rotation block " + std::to_string(block) +
                                              " is not a power of two in [2, " +
                                              std::to_string(kMaxRotationBlock) + "]");
  }
  return Status::Ok();
}

Status rotate(float* x, std::size_t n, std::uint32_t block, const SeedContext& shared) {
  GZ_RETURN_IF_ERROR(check_rotation_block(block));
  if (n > 0 && x == nullptr) return Status(Errc::kInvalidArgument, "rotate: null buffer");
  flip_signs(x, n, shared);
  transform_blocks(x, n, block);
  return Status::Ok();
}

Status unrotate(float* x, std::size_t n, std::uint32_t block, const SeedContext& shared) {
  GZ_RETURN_IF_ERROR(check_rotation_block(block));
  if (n > 0 && x == nullptr) return Status(Errc::kInvalidArgument, "unrotate: null buffer");
  transform_blocks(x, n, block);
  flip_signs(x, n, shared);
  return Status::Ok();
}

}  // namespace gradzip::quant
