// Automatic per-tensor choice (experiments/auto_choice.h): on a slow link large tensors get a
// compressor and tiny ones (latency-bound) stay identity; on PCIe the choice is identity
// or fp16; the accuracy guard removes candidates below min_bits; the rule text resolves to
// the chosen specs. Once with synthetic costs (the decision rule alone) and once with the
// costs measured on this machine (what `gradzip train --compressor auto` does).
#include <gtest/gtest.h>

#include "experiments/auto_choice.h"
#include "quant/registry.h"
#include "quant/rules.h"

namespace gradzip::experiments {
namespace {

std::vector<comm::TensorInfo> tensors() {
  return {{"conv.weight", {1024, 1024}, 1u << 20}, {"bn.bias", {10}, 10}, {"fc.weight", {1000, 64}, 64000}};
}

std::string spec_of(const std::string& s) { return quant::make_compressor(s).spec(); }

/// Per-element worker costs roughly like this 2-core machine's (ns per element).
std::vector<CodecCost> synthetic_costs() {
  return {{spec_of("identity"), 2e-7, 0.5e-9, 1e-7, 0.5e-9},
          {spec_of("fp16"), 2e-7, 1.0e-9, 1e-7, 1.0e-9},
          {spec_of("ef+qsgd:bits=4"), 1e-6, 6e-9, 2e-7, 2e-9},
          {spec_of("ef+topk:ratio=0.01"), 1e-6, 8e-9, 2e-7, 0.1e-9}};
}

AutoSpec spec_for(const std::string& link) {
  AutoSpec a = parse_auto_spec("auto:link=" + link + ",candidates=identity|fp16|ef+qsgd:bits=4|ef+topk:ratio=0.01");
  return a;
}

void expect_slow_link_choice(const AutoPlan& plan) {
  ASSERT_EQ(plan.choices.size(), 3u);
  EXPECT_NE(plan.choices[0].spec, spec_of("identity")) << "1M elements on eth1g";
  EXPECT_LT(plan.choices[0].bits_per_element, 8.0);
  EXPECT_EQ(plan.choices[1].spec, spec_of("identity")) << "10 elements: latency-bound";
  EXPECT_LT(plan.modeled_step_s, plan.identity_step_s);
}

void expect_pcie_choice(const AutoPlan& plan) {
  for (const auto& c : plan.choices) {
    EXPECT_TRUE(c.spec == spec_of("identity") || c.spec == spec_of("fp16")) << c.name << ": " << c.spec;
  }
}

TEST(AutoChoice, SyntheticCostsSlowLinkCompressesLargeTensorsOnly) {
  expect_slow_link_choice(choose_compressors(tensors(), spec_for("eth1g"), 4, 1, synthetic_costs()));
  expect_pcie_choice(choose_compressors(tensors(), spec_for("pcie4"), 4, 1, synthetic_costs()));
}

TEST(AutoChoice, GuardAndRulesText) {
  AutoSpec a = spec_for("eth1g");
  a.min_bits = 8;  // qsgd:bits=4 (~4.06 bits) and topk 1% (~0.64) are not allowed
  const AutoPlan plan = choose_compressors(tensors(), a, 4, 1, synthetic_costs());
  for (const auto& c : plan.choices) {
    EXPECT_GE(c.bits_per_element, 8.0) << c.name;
    EXPECT_TRUE(c.spec == spec_of("identity") || c.spec == spec_of("fp16")) << c.spec;
  }
  EXPECT_EQ(plan.choices[0].spec, spec_of("fp16"));
  // The rule text gives every tensor its choice.
  const auto rules = quant::CompressorRules::parse(plan.rules);
  for (const auto& c : plan.choices) EXPECT_EQ(rules.specs()[rules.spec_of(c.name, c.numel)], c.spec) << c.name;
  const auto j = auto_plan_json(plan, a);
  EXPECT_EQ(j["choices"].size(), 3u);
  EXPECT_EQ(j["link"], "eth1g");
  EXPECT_GT(j["modeled_step_seconds"].get<double>(), 0.0);
}

TEST(AutoChoice, MeasuredCostsOnThisMachine) {
  const AutoPlan slow = choose_compressors(tensors(), spec_for("eth1g"), 4, 1);
  expect_slow_link_choice(slow);
  ASSERT_EQ(slow.costs.size(), 4u);
  for (const auto& c : slow.costs) {
    // Fixed costs are timed at a tiny size, not extrapolated from two large times (which
    // made them noise, often clamped to 0): every part is positive.
    EXPECT_GT(c.worker_fixed_s, 0.0) << c.spec;
    EXPECT_GT(c.shard_fixed_s, 0.0) << c.spec;
    EXPECT_GT(c.worker_per_element_s, 0.0) << c.spec;
    EXPECT_GT(c.shard_per_element_s, 0.0) << c.spec;
  }
  expect_pcie_choice(choose_compressors(tensors(), spec_for("pcie4"), 4, 1, slow.costs));
}

TEST(AutoChoice, BadSpecsAreNamed) {
  EXPECT_THROW(parse_auto_spec("auto:link=warp9"), std::invalid_argument);
  EXPECT_THROW(parse_auto_spec("auto:min_bits=x"), std::invalid_argument);
  EXPECT_THROW(parse_auto_spec("auto:speed=1"), std::invalid_argument);
  EXPECT_TRUE(is_auto_spec("auto"));
  EXPECT_FALSE(is_auto_spec("automatic"));
  EXPECT_EQ(parse_auto_spec("auto:link=pcie4,min_bits=4,margin=0.1").min_bits, 4.0);
  EXPECT_THROW(choose_compressors({{"a*b", {1}, 1}}, spec_for("eth1g"), 1, 1, synthetic_costs()), std::invalid_argument);
  AutoSpec missing = spec_for("eth1g");
  missing.candidates = {"int8"};
  EXPECT_THROW(choose_compressors(tensors(), missing, 1, 1, synthetic_costs()), std::invalid_argument);
}

}  // namespace
}  // namespace gradzip::experiments
