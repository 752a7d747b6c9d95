// Homomorphic int8 quantization (quant/homomorphic.h).
#include "quant/homomorphic.h"

#include <cmath>
#include <limits>
#include <string>

#include "quant/codecs/bucketed.h"
#include "quant/rotation.h"

namespace gradzip::quant::homomorphic {
namespace {

Status check_levels(std::int32_t levels) {
  if (levels < 1 || levels > kMaxLevels) {
    return Status(Errc::kInvalidArgument, "homomorphic levels " + std::to_string(levels) + " outside 1..127");
  }
  return Status::Ok();
}

Status check_nonneg_finite(float v, const char* what) {
  if (!std::isfinite(v) || v < 0.0f) {
    return Status(Errc::kInvalidArgument, std::string("homomorphic ") + what + " " + std::to_string(v) +
                                              " is not finite and >= 0");
  }
  return Status::Ok();
}

/// Largest |y| = |x| * levels / scale an element may reach: levels * (1 + 2^-20), as IEEE
/// bits (|y| >= 0, so bit patterns order like the values; NaN's bits are above it).
std::uint32_t over_scale_bits(std::int32_t levels) {
  return bucketed::fbits(static_cast<float>(levels) * (1.0f + 0x1p-20f));
}

}  // namespace

Status check_config(const Config& config) {
  GZ_RETURN_IF_ERROR(check_levels(config.levels));
  return config.rotate ? check_rotation_block(config.block) : Status::Ok();
}

std::size_t sum_bytes_per_element(std::int32_t levels, std::size_t ranks) {
  if (levels < 1 || ranks == 0) return 0;
  const std::uint64_t top = static_cast<std::uint64_t>(levels) * ranks;
  if (top <= 127) return 1;
  if (top <= 32767) return 2;
  if (top <= 2147483647ull) return 4;
  return 0;
}

std::int32_t max_levels(std::size_t ranks, std::size_t sum_bytes) {
  if (ranks == 0) return 0;
  std::uint64_t limit = 0;
  if (sum_bytes == 1) limit = 127;
  if (sum_bytes == 2) limit = 32767;
  if (sum_bytes == 4) limit = 2147483647ull;
  const std::uint64_t levels = limit / ranks;
  return static_cast<std::int32_t>(levels < static_cast<std::uint64_t>(kMaxLevels) ? levels : kMaxLevels);
}

Status local_max_abs(const float* x, std::size_t n, float* max_abs) {
  if (n > 0 && x == nullptr) return Status(Errc::kInvalidArgument, "local_max_abs: null buffer");
  const float m = bucketed::max_abs_bits(x, n);  // NaN/Inf propagate as non-finite
  if (!std::isfinite(m)) return bucketed::nonfinite_bucket(x, n, "max |x|");
  *max_abs = m;
  return Status::Ok();
}

template <typename T>
Status encode_local(const float* x, std::size_t n, float scale, std::int32_t levels, const SeedContext& ctx,
                    T* codes) {
  GZ_RETURN_IF_ERROR(check_levels(levels));
  GZ_RETURN_IF_ERROR(check_nonneg_finite(scale, "scale"));
  if (ctx.bucket >= (1u << 24)) return Status(Errc::kInvalidArgument, "bucket index >= 2^24");
  if (n >= (std::uint64_t{1} << 34)) return Status(Errc::kInvalidArgument, "bucket of 2^34 or more elements");
  if (n > 0 && (x == nullptr || codes == nullptr)) return Status(Errc::kInvalidArgument, "encode_local: null buffer");
  if (scale < bucketed::kMinScale) {
    for (std::size_t i = 0; i < n; ++i) codes[i] = 0;
    return Status::Ok();
  }
  const float inv = static_cast<float>(levels) / scale;
  const std::uint32_t limit = over_scale_bits(levels);
  const std::int32_t top = levels;
  std::uint32_t words[bucketed::kCodeBlock];
  std::uint32_t over = 0;
  for (std::size_t at = 0; at < n; at += bucketed::kCodeBlock) {
    const std::size_t m = n - at < bucketed::kCodeBlock ? n - at : bucketed::kCodeBlock;
    bucketed::rounding_words(ctx, at / 4, (m + 3) / 4, words);
    const float* __restrict xs = x + at;
    T* __restrict out = codes + at;
    for (std::size_t j = 0; j < m; ++j) {
      // An element over the scale, NaN or Inf is flagged and quantized as 0 (so the
      // float-to-int conversion below is always defined); integer ops keep it vectorized.
      const std::uint32_t yb = bucketed::fbits(xs[j] * inv);
      const std::uint32_t bad = (yb & 0x7FFFFFFFu) > limit ? 1u : 0u;
      over |= bad;
      const float y = bucketed::bitsf(yb & (bad - 1u));
      // floor(y + u) for y + u in (-128, 128]: truncation of a positive number.
      auto q = static_cast<std::int32_t>((y + bucketed::uniform24(words[j])) + 128.0f) - 128;
      q = q > top ? top : (q < -top ? -top : q);
      out[j] = static_cast<T>(q);
    }
  }
  if (over != 0) {
    return Status(Errc::kInvalidArgument, "an element exceeds the agreed scale " + std::to_string(scale) +
                                              " or is not finite; the scale must be the max over ranks of "
                                              "local_max_abs");
  }
  return Status::Ok();
}

template <typename T>
void accumulate(const std::int8_t* codes, std::size_t n, T* sum) {
  const std::int8_t* __restrict c = codes;
  T* __restrict s = sum;
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<T>(s[i] + c[i]);
}

template <typename T>
Status decode_sum(const T* sum, std::size_t n, float scale, std::int32_t levels, float weight, float* out) {
  GZ_RETURN_IF_ERROR(check_levels(levels));
  GZ_RETURN_IF_ERROR(check_nonneg_finite(scale, "scale"));
  GZ_RETURN_IF_ERROR(check_nonneg_finite(weight, "weight"));
  if (n > 0 && (sum == nullptr || out == nullptr)) return Status(Errc::kInvalidArgument, "decode_sum: null buffer");
  const float step = (scale / static_cast<float>(levels)) * weight;
  const T* __restrict s = sum;
  float* __restrict o = out;
  for (std::size_t i = 0; i < n; ++i) o[i] = static_cast<float>(s[i]) * step;
  return Status::Ok();
}

#define GZ_HOMOMORPHIC_INSTANTIATE(T)                                                                           \
  template Status encode_local<T>(const float*, std::size_t, float, std::int32_t, const SeedContext&, T*);  \
  template void accumulate<T>(const std::int8_t*, std::size_t, T*);                                         \
  template Status decode_sum<T>(const T*, std::size_t, float, std::int32_t, float, float*);
GZ_HOMOMORPHIC_INSTANTIATE(std::int8_t)
GZ_HOMOMORPHIC_INSTANTIATE(std::int16_t)
GZ_HOMOMORPHIC_INSTANTIATE(std::int32_t)
#undef GZ_HOMOMORPHIC_INSTANTIATE

}  // namespace gradzip::quant::homomorphic
