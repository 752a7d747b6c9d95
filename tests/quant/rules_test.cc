// Per-tensor compressor rules (quant/rules.h): glob and size matching, first match wins,
// canonical text that parses back to the same list, typed errors naming the bad rule.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "quant/registry.h"
#include "quant/rules.h"

namespace gradzip::quant {
namespace {

TEST(CompressorRules, GlobMatchesWholeNames) {
  EXPECT_TRUE(glob_match("*bn*", "layer1.0.bn1.weight"));
  EXPECT_TRUE(glob_match("fc.*", "fc.bias"));
  EXPECT_FALSE(glob_match("fc.*", "layer3.fc.bias"));
  EXPECT_TRUE(glob_match("*.bias", "fc.bias"));
  EXPECT_FALSE(glob_match("*.bias", "fc.bias2"));
  EXPECT_TRUE(glob_match("layer?.*.conv1.weight", "layer2.0.conv1.weight"));
  EXPECT_FALSE(glob_match("layer?.conv1", "layer10.conv1"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXbYbZ"));
  EXPECT_TRUE(glob_match("conv1.weight", "conv1.weight"));
}

TEST(CompressorRules, FirstMatchWinsAcrossGlobsAndSizes) {
  const auto r = CompressorRules::parse("*bn*=identity; numel<1024=identity;fc.*=ef+fp16 ; *=ef+topk:ratio=0.01");
  ASSERT_EQ(r.rules().size(), 4u);
  ASSERT_EQ(r.specs().size(), 3u);  // identity appears twice: one spec
  EXPECT_EQ(r.specs()[0], "none+identity");
  EXPECT_EQ(r.specs()[1], "ef+fp16");
  EXPECT_EQ(r.specs()[2], make_compressor("ef+topk:ratio=0.01").spec());
  EXPECT_EQ(r.spec_of("layer1.0.bn1.weight", 1u << 20), 0u);  // glob before size
  EXPECT_EQ(r.spec_of("fc.bias", 10), 0u);                    // size before fc.*
  EXPECT_EQ(r.spec_of("fc.weight", 640), 0u);
  EXPECT_EQ(r.spec_of("fc.weight", 64000), 1u);
  EXPECT_EQ(r.spec_of("layer2.0.conv1.weight", 1024), 2u);    // numel<1024 excludes 1024
}

TEST(CompressorRules, SizeRangesAndFileSyntax) {
  const auto r = CompressorRules::parse(
      "# comment line\n"
      "numel<=10=fp16\n"
      "100<=numel<200=bf16;numel>5000=ef+scaled-sign\n"
      "numel>=1000=int8\n"
      "\n"
      "*=identity\n");
  EXPECT_EQ(r.specs()[r.spec_of("a", 10)], "none+fp16");
  EXPECT_EQ(r.specs()[r.spec_of("a", 11)], "none+identity");
  EXPECT_EQ(r.specs()[r.spec_of("a", 100)], "none+bf16");
  EXPECT_EQ(r.specs()[r.spec_of("a", 199)], "none+bf16");
  EXPECT_EQ(r.specs()[r.spec_of("a", 200)], "none+identity");
  EXPECT_EQ(r.specs()[r.spec_of("a", 1000)], make_compressor("int8").spec());
  EXPECT_EQ(r.specs()[r.spec_of("a", 5000)], make_compressor("int8").spec());
  EXPECT_EQ(r.specs()[r.spec_of("a", 5001)], make_compressor("ef+scaled-sign").spec());
  // Through a file, as --compressor-rules FILE reads it.
  const std::string path = testing::TempDir() + "/gz_rules.txt";
  {
    std::ofstream f(path);
    f << "*bn*=identity\n*=fp16\n";
  }
  EXPECT_EQ(CompressorRules::parse(read_rules_argument(path)).canonical(), "rules:*bn*=none+identity;*=none+fp16");
  EXPECT_EQ(read_rules_argument("*=fp16"), "*=fp16");  // inline
  EXPECT_THROW(read_rules_argument(testing::TempDir() + "/no-such-rules"), SpecError);
  std::remove(path.c_str());
}

TEST(CompressorRules, CanonicalRoundTripsWithFallbackAndResolvedEfScale) {
  const auto r = CompressorRules::parse("*bn*=identity;fc.*=ef+qsgd:bits=4", "ef+topk:ratio=0.05");
  ASSERT_EQ(r.rules().size(), 3u);
  EXPECT_EQ(r.rules().back().lhs, "*");
  // ef over qsgd gets its safe scale spelled out (quant/memory/ef.cc).
  EXPECT_EQ(r.specs()[1], make_compressor("ef+qsgd:bits=4").spec());
  EXPECT_NE(r.specs()[1].find("ef:scale="), std::string::npos);
  const auto again = CompressorRules::parse(r.canonical());
  EXPECT_EQ(again.canonical(), r.canonical());
  EXPECT_EQ(run_compressor_string("ef+topk:ratio=0.05", "", "*bn*=identity;fc.*=ef+qsgd:bits=4"), r.canonical());
  // No rules, or rules that all name one spec: the plain canonical spec.
  EXPECT_EQ(run_compressor_string("ef+topk:ratio=0.05", "", ""), make_compressor("ef+topk:ratio=0.05").spec());
  EXPECT_EQ(run_compressor_string("fp16", "", "*bn*=fp16;numel<10=fp16"), "none+fp16");
  EXPECT_EQ(run_compressor_string("identity", "", "*bn*=fp16;*=fp16"), "none+fp16");  // no unreachable fallback
  EXPECT_TRUE(CompressorRules::is_rules(r.canonical()));
  EXPECT_FALSE(CompressorRules::is_rules("ef+topk"));
}

TEST(CompressorRules, ErrorsNameTheRule) {
  auto message = [](const std::string& text) {
    try {
      CompressorRules::parse(text);
    } catch (const SpecError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("*bn*").find("'*bn*': expected pattern=spec"), std::string::npos);
  EXPECT_NE(message("=fp16").find("expected pattern=spec"), std::string::npos);
  EXPECT_NE(message("numel<abc=fp16").find("size ranges are"), std::string::npos);
  EXPECT_NE(message("10<=numel<5=fp16").find("size ranges are"), std::string::npos);
  EXPECT_NE(message("*=qsgd:bits=99").find("compressor rule '*=qsgd:bits=99': qsgd: bits=99"), std::string::npos);
  EXPECT_NE(message(" ; \n# only a comment\n").find("no rule given"), std::string::npos);
  const auto r = CompressorRules::parse("conv*=fp16");
  try {
    r.spec_of("fc.weight", 10);
    FAIL() << "expected SpecError";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("no rule matches tensor 'fc.weight'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gradzip::quant
