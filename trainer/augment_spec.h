// The text form of AugmentOptions (trainer/augment.h), as `--augment` takes it. No torch.
//
//   spec      := "none" | transform { "," transform }
//   transform := name [ ":" key "=" value { "," key "=" value } ]
//
// An item after a comma that holds '=' and no ':' continues the parameters of the
// transform before it ("colour:brightness=0.2,contrast=0.1,flip"). Transforms, in the
// order the loader applies them (augment_image), with their keys and defaults:
//
//   scale   random resized crop (Szegedy et al. 2015)      min=0.35 (area fraction, 0.05..1)
//   crop    zero-pad, then random crop back (He et al. 2016) pad=4 (pixels, 1..64)
//   flip    horizontal flip with probability 1/2            (no keys)
//   colour  brightness and contrast jitter (alias color)    brightness=0.2, contrast=0.2 (0..1)
//   pca     PCA colour jitter, RGB only (Krizhevsky 2012)   sigma=0.1 (0..1)
//
// e.g. "crop:pad=4,flip" (the usual CIFAR recipe) or "none".
#pragma once

#include <string>

#include "trainer/augment.h"

namespace gradzip::trainer {

/// Parses `spec`. Throws ConfigError naming the bad transform, key or value and what is
/// allowed. A transform given twice is an error.
AugmentOptions parse_augment_spec(const std::string& spec);

/// The canonical spec of `options` (transforms in application order, every key with its
/// value), "none" when nothing is on; parse_augment_spec(augment_spec(o)) == o.
std::string augment_spec(const AugmentOptions& options);

}  // namespace gradzip::trainer
