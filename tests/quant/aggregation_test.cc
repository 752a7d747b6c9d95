// Aggregation-only compressors (quant/aggregation.h): specs parse into the configs of
// quant/powersgd.h and quant/homomorphic.h, canonical specs parse back, bad values name
// their key, the registry listing shows them with their byte formulas, and make_codec /
// make_compressor refuse them with a message that says where they run.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "quant/aggregation.h"
#include "quant/registry.h"

namespace gradzip::quant {
namespace {

TEST(AggregationSpec, PowerSgdSpecFillsItsConfig) {
  const PowerSgdConfig d = parse_powersgd_spec("powersgd");
  EXPECT_EQ(d.rank, PowerSgdConfig{}.rank);
  EXPECT_EQ(d.min_numel, PowerSgdConfig{}.min_numel);
  const PowerSgdConfig c = parse_powersgd_spec("powersgd:rank=2,min_numel=100");
  EXPECT_EQ(c.rank, 2u);
  EXPECT_EQ(c.min_numel, 100u);
  EXPECT_EQ(canonical_aggregation_spec("powersgd:rank=2"), "powersgd:rank=2,min_numel=4096");
  EXPECT_EQ(parse_powersgd_spec(canonical_aggregation_spec("powersgd:rank=8")).rank, 8u);
}

TEST(AggregationSpec, ThcSpecFillsItsConfig) {
  const homomorphic::Config c = parse_thc_spec("thc:levels=31,rotate=true,block=1024");
  EXPECT_EQ(c.levels, 31);
  EXPECT_TRUE(c.rotate);
  EXPECT_EQ(c.block, 1024u);
  EXPECT_TRUE(homomorphic::check_config(c).ok());
  EXPECT_EQ(canonical_aggregation_spec("thc"), "thc:levels=127,rotate=false,block=4096");
  EXPECT_FALSE(parse_thc_spec("thc").rotate);
}

TEST(AggregationSpec, BadValuesNameTheirKey) {
  const std::pair<const char*, const char*> bad[] = {
      {"powersgd:rank=0", "rank"},     {"powersgd:rank=999", "rank"}, {"powersgd:ranks=2", "ranks"},
      {"thc:levels=128", "levels"},    {"thc:block=1000", "block"},   {"thc:rotate=maybe", "rotate"},
  };
  for (const auto& [spec, key] : bad) {
    try {
      if (std::string(spec).rfind("thc", 0) == 0) {
        parse_thc_spec(spec);
      } else {
        parse_powersgd_spec(spec);
      }
      ADD_FAILURE() << spec << " was accepted";
    } catch (const SpecError& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr(key)) << spec;
    }
  }
  EXPECT_THROW(parse_powersgd_spec("thc"), SpecError) << "the spec must name the compressor parsed";
  EXPECT_THROW(canonical_aggregation_spec("qsgd:bits=4"), SpecError);
}

TEST(AggregationRegistry, ListedWithByteFormulasAndRefusedAsCodecs) {
  const std::string listing = describe_registry();
  for (const auto* e : aggregation_entries()) {
    EXPECT_THAT(listing, ::testing::HasSubstr("  " + e->name + "  ")) << e->name;
    EXPECT_THAT(listing, ::testing::HasSubstr("bytes: " + e->bytes)) << e->name;
    EXPECT_EQ(find_codec(e->name), nullptr) << e->name << " must not also be a message codec";
    try {
      make_compressor(e->name);
      ADD_FAILURE() << e->name << " built as a codec";
    } catch (const SpecError& err) {
      EXPECT_THAT(err.what(), ::testing::HasSubstr("aggregation-only")) << e->name;
    }
    EXPECT_TRUE(is_aggregation_only("ef+" + e->name));
  }
  EXPECT_FALSE(is_aggregation_only("ef+qsgd:bits=4"));
  EXPECT_THROW(make_codec("nonesuch"), SpecError);
}

}  // namespace
}  // namespace gradzip::quant
