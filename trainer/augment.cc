#include "trainer/augment.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace gradzip::trainer {

RgbPca compute_rgb_pca(const Dataset& d, std::size_t max_images) {
  RgbPca p;
  if (d.channels != 3) return p;
  const std::size_t n = std::min(d.size(), max_images);
  const std::size_t plane = static_cast<std::size_t>(d.height) * d.width;
  double mean[3] = {0, 0, 0}, cov[3][3] = {};
  double count = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* im = d.image(i);
    for (std::size_t j = 0; j < plane; ++j) {
      double v[3];
      for (int c = 0; c < 3; ++c) v[c] = im[c * plane + j] / 255.0;
      for (int a = 0; a < 3; ++a) {
        mean[a] += v[a];
        for (int b = 0; b < 3; ++b) cov[a][b] += v[a] * v[b];
      }
      count += 1;
    }
  }
  if (count == 0) return p;
  for (int a = 0; a < 3; ++a) mean[a] /= count;
  double m[3][3], vec[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) m[a][b] = cov[a][b] / count - mean[a] * mean[b];
  // Cyclic Jacobi rotations: a 3x3 symmetric matrix converges in a handful of sweeps.
  for (int sweep = 0; sweep < 50; ++sweep) {
    const double off = m[0][1] * m[0][1] + m[0][2] * m[0][2] + m[1][2] * m[1][2];
    if (off < 1e-30) break;
    for (int pi = 0; pi < 2; ++pi) {
      for (int q = pi + 1; q < 3; ++q) {
        if (std::fabs(m[pi][q]) < 1e-300) continue;
        const double theta = (m[q][q] - m[pi][pi]) / (2 * m[pi][q]);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double cs = 1 / std::sqrt(t * t + 1), sn = t * cs;
        for (int k = 0; k < 3; ++k) {  // m = J^T m J
          const double a = m[k][pi], b = m[k][q];
          m[k][pi] = cs * a - sn * b;
          m[k][q] = sn * a + cs * b;
        }
        for (int k = 0; k < 3; ++k) {
          const double a = m[pi][k], b = m[q][k];
          m[pi][k] = cs * a - sn * b;
          m[q][k] = sn * a + cs * b;
        }
        for (int k = 0; k < 3; ++k) {
          const double a = vec[k][pi], b = vec[k][q];
          vec[k][pi] = cs * a - sn * b;
          vec[k][q] = sn * a + cs * b;
        }
      }
    }
  }
  int order[3] = {0, 1, 2};
  std::sort(order, order + 3, [&](int a, int b) { return m[a][a] > m[b][b]; });
  for (int k = 0; k < 3; ++k) {
    p.values[k] = static_cast<float>(std::max(0.0, m[order[k]][order[k]]));
    for (int c = 0; c < 3; ++c) p.vectors[k][c] = static_cast<float>(vec[c][order[k]]);
  }
  return p;
}

CropBox random_pad_crop_box(int h, int w, int pad, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> d(0, 2 * pad);
  CropBox b;
  b.x = d(rng);
  b.y = d(rng);
  b.w = w;
  b.h = h;
  return b;
}

void pad_crop(const float* in, float* out, int c, int h, int w, int pad, const CropBox& box) {
  for (int ch = 0; ch < c; ++ch) {
    for (int y = 0; y < h; ++y) {
      const int sy = y + box.y - pad;
      float* o = out + (static_cast<std::size_t>(ch) * h + y) * w;
      if (sy < 0 || sy >= h) {
        std::fill(o, o + w, 0.f);
        continue;
      }
      const float* s = in + (static_cast<std::size_t>(ch) * h + sy) * w;
      for (int x = 0; x < w; ++x) {
        const int sx = x + box.x - pad;
        o[x] = (sx < 0 || sx >= w) ? 0.f : s[sx];
      }
    }
  }
}

CropBox random_resized_crop_box(int h, int w, float min_scale, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> scale(std::clamp<double>(min_scale, 0.01, 1.0), 1.0);
  std::uniform_real_distribution<double> log_ratio(std::log(3.0 / 4.0), std::log(4.0 / 3.0));
  const double area = static_cast<double>(h) * w;
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double a = area * scale(rng), r = std::exp(log_ratio(rng));
    const int cw = static_cast<int>(std::lround(std::sqrt(a * r)));
    const int chh = static_cast<int>(std::lround(std::sqrt(a / r)));
    if (cw >= 1 && chh >= 1 && cw <= w && chh <= h) {
      CropBox b;
      b.w = cw;
      b.h = chh;
      b.x = std::uniform_int_distribution<int>(0, w - cw)(rng);
      b.y = std::uniform_int_distribution<int>(0, h - chh)(rng);
      return b;
    }
  }
  return CropBox{0, 0, w, h};
}

void resized_crop(const float* in, float* out, int c, int h, int w, const CropBox& box) {
  const float sx = static_cast<float>(box.w) / w, sy = static_cast<float>(box.h) / h;
  for (int y = 0; y < h; ++y) {
    // Pixel-centre sampling, clamped to the crop (align_corners = false).
    const float fy = std::clamp((y + 0.5f) * sy - 0.5f, 0.f, static_cast<float>(box.h - 1));
    const int y0 = static_cast<int>(fy), y1 = std::min(y0 + 1, box.h - 1);
    const float wy = fy - y0;
    for (int x = 0; x < w; ++x) {
      const float fx = std::clamp((x + 0.5f) * sx - 0.5f, 0.f, static_cast<float>(box.w - 1));
      const int x0 = static_cast<int>(fx), x1 = std::min(x0 + 1, box.w - 1);
      const float wx = fx - x0;
      for (int ch = 0; ch < c; ++ch) {
        const float* p = in + static_cast<std::size_t>(ch) * h * w;
        auto at = [&](int yy, int xx) { return p[static_cast<std::size_t>(box.y + yy) * w + box.x + xx]; };
        const float top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx;
        const float bot = at(y1, x0) * (1 - wx) + at(y1, x1) * wx;
        out[(static_cast<std::size_t>(ch) * h + y) * w + x] = top * (1 - wy) + bot * wy;
      }
    }
  }
}

void horizontal_flip(float* img, int c, int h, int w) {
  for (int r = 0; r < c * h; ++r) std::reverse(img + static_cast<std::size_t>(r) * w, img + static_cast<std::size_t>(r + 1) * w);
}

void brightness_contrast(float* img, int c, int h, int w, float brightness, float contrast, std::mt19937_64& rng) {
  const std::size_t n = static_cast<std::size_t>(c) * h * w;
  const float b = brightness > 0 ? std::uniform_real_distribution<float>(-brightness, brightness)(rng) : 0.f;
  const float k = contrast > 0 ? std::uniform_real_distribution<float>(1 - contrast, 1 + contrast)(rng) : 1.f;
  double mean = 0;
  for (std::size_t i = 0; i < n; ++i) mean += img[i];
  const float m = static_cast<float>(mean / std::max<std::size_t>(1, n)) + b;
  for (std::size_t i = 0; i < n; ++i) img[i] = m + (img[i] + b - m) * k;
}

void pca_color_jitter(float* img, int h, int w, const RgbPca& pca, float sigma, std::mt19937_64& rng) {
  std::normal_distribution<float> alpha(0.f, sigma);
  float shift[3] = {0, 0, 0};
  for (int k = 0; k < 3; ++k) {
    // Krizhevsky et al. use the eigenvalues of the covariance; we scale by sqrt(lambda)
    // (the standard deviation along the component) so that sigma is in units of it.
    const float a = alpha(rng) * std::sqrt(pca.values[k]);
    for (int c = 0; c < 3; ++c) shift[c] += a * pca.vectors[k][c];
  }
  const std::size_t plane = static_cast<std::size_t>(h) * w;
  for (int c = 0; c < 3; ++c)
    for (std::size_t j = 0; j < plane; ++j) img[c * plane + j] += shift[c];
}

void augment_image(const std::uint8_t* in, float* out, int c, int h, int w, const AugmentOptions& o,
                   const ChannelStats& norm, const RgbPca* pca, std::mt19937_64& rng, std::vector<float>* scratch) {
  const std::size_t n = static_cast<std::size_t>(c) * h * w;
  scratch->resize(n);
  float* a = out;
  float* b = scratch->data();
  for (std::size_t i = 0; i < n; ++i) a[i] = in[i] * (1.f / 255.f);
  if (o.random_resized_crop) {
    resized_crop(a, b, c, h, w, random_resized_crop_box(h, w, o.rrc_min_scale, rng));
    std::swap(a, b);
  }
  if (o.crop_padding > 0) {
    pad_crop(a, b, c, h, w, o.crop_padding, random_pad_crop_box(h, w, o.crop_padding, rng));
    std::swap(a, b);
  }
  if (o.horizontal_flip && std::uniform_int_distribution<int>(0, 1)(rng) == 1) horizontal_flip(a, c, h, w);
  if (o.brightness > 0 || o.contrast > 0) brightness_contrast(a, c, h, w, o.brightness, o.contrast, rng);
  if (o.pca_jitter > 0 && pca != nullptr && c == 3) pca_color_jitter(a, h, w, *pca, o.pca_jitter, rng);
  const std::size_t plane = static_cast<std::size_t>(h) * w;
  for (int ch = 0; ch < c; ++ch) {
    const float m = norm.mean[static_cast<std::size_t>(ch)], inv = 1.f / norm.stddev[static_cast<std::size_t>(ch)];
    for (std::size_t j = 0; j < plane; ++j) out[ch * plane + j] = (a[ch * plane + j] - m) * inv;
  }
}

}  // namespace gradzip::trainer
