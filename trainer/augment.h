// Data augmentation on raw float images (CHW, one image at a time; no torch).
//
// Every function takes its randomness from an explicit std::mt19937_64 so that the
// loader can seed one generator per (seed, epoch, sample) and produce the same batch no
// matter which thread handled which sample.
//
// References: random crop with padding and horizontal flip as in He et al. 2016 (CIFAR:
// pad 4, crop 32); random resized crop (scale and aspect) as in Szegedy et al. 2015
// ("Going deeper with convolutions"); PCA colour jitter as in Krizhevsky, Sutskever &
// Hinton 2012, section 4.1 (alpha ~ N(0, 0.1) along the RGB principal components).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "trainer/dataset.h"

namespace gradzip::trainer {

/// Which augmentations the training loader applies (all off: plain normalisation).
struct AugmentOptions {
  int crop_padding = 0;              ///< > 0: zero-pad by this many pixels, then random crop back
  bool horizontal_flip = false;      ///< flip with probability 1/2
  bool random_resized_crop = false;  ///< crop a random area/aspect, resize back (bilinear)
  float rrc_min_scale = 0.35f;       ///< smallest crop area fraction for random_resized_crop
  float brightness = 0.f;            ///< add U(-b, b) (on the 0..1 scale) to every pixel
  float contrast = 0.f;              ///< scale deviations from the mean by U(1-c, 1+c)
  float pca_jitter = 0.f;            ///< stddev of Krizhevsky's alpha; RGB only (needs a PCA basis)
};

/// A crop rectangle in the coordinates of the (padded) source image.
struct CropBox {
  int x = 0, y = 0, w = 0, h = 0;
};

/// Principal components of the RGB pixel covariance (0..1 scale) of a data set:
/// eigenvalues (descending) and unit eigenvectors (vectors[k] is component k).
struct RgbPca {
  std::array<float, 3> values{};
  std::array<std::array<float, 3>, 3> vectors{};
};
/// Computes the RGB PCA of up to max_images images of a 3-channel data set (Jacobi
/// eigen-decomposition of the 3x3 covariance).
RgbPca compute_rgb_pca(const Dataset& d, std::size_t max_images = 2000);

/// Random crop offsets for padding `pad` around an h x w image: x, y uniform in [0, 2*pad],
/// size h x w. The crop always lies within the padded image.
CropBox random_pad_crop_box(int h, int w, int pad, std::mt19937_64& rng);
/// out[c][y][x] = in[c][y + box.y - pad][x + box.x - pad], zero outside the source.
/// `out` is c x h x w (same size as `in`); must not alias `in`.
void pad_crop(const float* in, float* out, int c, int h, int w, int pad, const CropBox& box);

/// A random-resized-crop box: area fraction in [min_scale, 1], aspect in [3/4, 4/3],
/// within the h x w image (falls back to the whole image after 10 tries).
CropBox random_resized_crop_box(int h, int w, float min_scale, std::mt19937_64& rng);
/// Bilinear resize of `box` of in (c x h x w) to out (c x h x w). Must not alias.
void resized_crop(const float* in, float* out, int c, int h, int w, const CropBox& box);

/// Mirrors every row in place (an involution: applying it twice restores the image).
void horizontal_flip(float* img, int c, int h, int w);

/// img += U(-brightness, brightness); img = mean + (img - mean) * U(1-contrast, 1+contrast)
/// (mean over the whole image). Values are on the 0..1 scale; not clamped.
void brightness_contrast(float* img, int c, int h, int w, float brightness, float contrast, std::mt19937_64& rng);

/// Krizhevsky 2012 PCA jitter: adds sum_k alpha_k * lambda_k * v_k to every RGB pixel,
/// alpha_k ~ N(0, sigma). img must have 3 channels.
void pca_color_jitter(float* img, int h, int w, const RgbPca& pca, float sigma, std::mt19937_64& rng);

/// The full training-time pipeline for one image: uint8 CHW -> float (0..1) ->
/// augmentations -> per-channel normalisation (x - mean) / std into out (c x h x w).
/// `scratch` is resized as needed (reuse it across calls to avoid allocation).
void augment_image(const std::uint8_t* in, float* out, int c, int h, int w, const AugmentOptions& o,
                   const ChannelStats& norm, const RgbPca* pca, std::mt19937_64& rng, std::vector<float>* scratch);

}  // namespace gradzip::trainer
