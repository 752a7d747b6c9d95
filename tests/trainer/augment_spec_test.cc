// --augment specs (trainer/augment_spec.h): every transform and key parses into the
// AugmentOptions the loader applies, the canonical form reads back to the same options,
// and every mistake is a ConfigError naming the transform, key or value.
#include <gtest/gtest.h>

#include <string>

#include "trainer/augment_spec.h"
#include "trainer/errors.h"

namespace gradzip::trainer {
namespace {

void expect_same(const AugmentOptions& a, const AugmentOptions& b, const std::string& spec) {
  EXPECT_EQ(a.crop_padding, b.crop_padding) << spec;
  EXPECT_EQ(a.horizontal_flip, b.horizontal_flip) << spec;
  EXPECT_EQ(a.random_resized_crop, b.random_resized_crop) << spec;
  EXPECT_EQ(a.rrc_min_scale, b.rrc_min_scale) << spec;
  EXPECT_EQ(a.brightness, b.brightness) << spec;
  EXPECT_EQ(a.contrast, b.contrast) << spec;
  EXPECT_EQ(a.pca_jitter, b.pca_jitter) << spec;
}

TEST(AugmentSpec, EveryTransformAndKey) {
  const AugmentOptions o = parse_augment_spec("crop:pad=3,flip,scale:min=0.5,color:brightness=0.3,contrast=0.1,"
                                              "pca:sigma=0.05");
  EXPECT_EQ(o.crop_padding, 3);
  EXPECT_TRUE(o.horizontal_flip);
  EXPECT_TRUE(o.random_resized_crop);
  EXPECT_FLOAT_EQ(o.rrc_min_scale, 0.5f);
  EXPECT_FLOAT_EQ(o.brightness, 0.3f);
  EXPECT_FLOAT_EQ(o.contrast, 0.1f);
  EXPECT_FLOAT_EQ(o.pca_jitter, 0.05f);
  const AugmentOptions defaults = parse_augment_spec("crop,scale,colour,pca");
  EXPECT_EQ(defaults.crop_padding, 4);
  EXPECT_FLOAT_EQ(defaults.rrc_min_scale, 0.35f);
  EXPECT_FLOAT_EQ(defaults.brightness, 0.2f);
  EXPECT_FLOAT_EQ(defaults.contrast, 0.2f);
  EXPECT_FLOAT_EQ(defaults.pca_jitter, 0.1f);
  expect_same(parse_augment_spec("none"), AugmentOptions{}, "none");
  EXPECT_EQ(augment_spec(AugmentOptions{}), "none");
}

TEST(AugmentSpec, CanonicalFormRoundTrips) {
  for (const std::string spec : {"none", "flip", "crop:pad=4,flip", "flip,crop:pad=1", "scale:min=0.08",
                                 "colour:contrast=0.4", "pca:sigma=0.3,scale,flip,crop:pad=64,colour"}) {
    const AugmentOptions o = parse_augment_spec(spec);
    const std::string canonical = augment_spec(o);
    expect_same(parse_augment_spec(canonical), o, spec + " -> " + canonical);
    EXPECT_EQ(augment_spec(parse_augment_spec(canonical)), canonical) << spec;
  }
  EXPECT_EQ(augment_spec(parse_augment_spec("flip,crop:pad=4")), "crop:pad=4,flip") << "application order";
}

TEST(AugmentSpec, MistakesNameWhatIsWrong) {
  const std::pair<std::string, std::string> bad[] = {
      {"", "empty spec"},
      {"crop:padd=4", "crop: unknown key 'padd' (allowed: pad)"},
      {"crop:pad=2.5", "bad value '2.5' for pad"},
      {"crop:pad=0", "bad value '0' for pad"},
      {"scale:min=1.5", "bad value '1.5' for min"},
      {"colour:brightness=x", "bad value 'x' for brightness"},
      {"flip:p=1", "flip: unknown key 'p' (allowed: none)"},
      {"mixup", "unknown transform 'mixup'"},
      {"flip,,crop", "empty item"},
      {"contrast=0.1", "no transform before it"},
      {"crop:pad", "expected key=value"},
      {"flip,flip", "'flip' given twice"},
      {"none,crop", "'none' cannot be combined"},
  };
  for (const auto& [spec, message] : bad) {
    try {
      parse_augment_spec(spec);
      ADD_FAILURE() << "'" << spec << "' was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << spec << ": " << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("--augment: ", 0), 0u) << e.what();
    }
  }
}

}  // namespace
}  // namespace gradzip::trainer
