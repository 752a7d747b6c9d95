// Randomized Hadamard rotation (quant/rotation.h).
#include "quant/rotation.h"

#include <cmath>
#include <cstring>
#include <string>

namespace gradzip::quant {
namespace {

/// Orthonormal fast Walsh-Hadamard transform of x[0, m), m a power of two: the Sylvester
/// butterflies (a, b) -> (a + b, a - b) over log2(m) levels, scaled by 1/sqrt(m) so that
/// applying it twice is the identity. The first two levels run as one radix-4 pass and
/// the scale is applied as the last level stores: the same fp32 operations as level by
/// level, in fewer passes over the block.
void fwht(float* __restrict x, std::size_t m) {
  if (m < 2) return;
  const float norm = static_cast<float>(1.0 / std::sqrt(static_cast<double>(m)));
  std::size_t h = 1;
  if (m >= 8) {
    for (std::size_t i = 0; i < m; i += 4) {
      const float s0 = x[i] + x[i + 1], d0 = x[i] - x[i + 1];
      const float s1 = x[i + 2] + x[i + 3], d1 = x[i + 2] - x[i + 3];
      x[i] = s0 + s1;
      x[i + 1] = d0 + d1;
      x[i + 2] = s0 - s1;
      x[i + 3] = d0 - d1;
    }
    h = 4;
  }
  for (; h < m; h *= 2) {
    const float scale = 2 * h == m ? norm : 1.0f;
    for (std::size_t i = 0; i < m; i += 2 * h) {
      float* __restrict lo = x + i;
      float* __restrict hi = x + i + h;
      for (std::size_t j = 0; j < h; ++j) {
        const float a = lo[j];
        const float b = hi[j];
        lo[j] = (a + b) * scale;
        hi[j] = (a - b) * scale;
      }
    }
  }
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

namespace {
/// rotate (signs, then transform) or its inverse (transform, then signs).
Status apply(float* x, std::size_t n, std::uint32_t block, const SeedContext& shared, bool inverse) {
  GZ_RETURN_IF_ERROR(check_rotation_block(block));
  if (n > 0 && x == nullptr) return Status(Errc::kInvalidArgument, "rotation of a null buffer");
  if (!inverse) flip_signs(x, n, shared);
  transform_blocks(x, n, block);
  if (inverse) flip_signs(x, n, shared);
  return Status::Ok();
}
}  // namespace

Status rotate(float* x, std::size_t n, std::uint32_t block, const SeedContext& shared) {
  return apply(x, n, block, shared, false);
}

Status unrotate(float* x, std::size_t n, std::uint32_t block, const SeedContext& shared) {
  return apply(x, n, block, shared, true);
}

}  // namespace gradzip::quant
