// `gradzip train --compressor-rules` and `--compressor auto:...` end to end (the built binary, simulated cluster, tiny
// ResNet-20 on 256 Fashion-MNIST images, 2 steps): every bucket's resolved spec lands in
// summary.json and follows the rules (first match wins, glob and size rules, inline and
// FILE forms); a rule list that sends everything to one spec trains with the same
// buckets and the same uplink bytes as the plain --compressor; bad rules exit 2.
#include <fstream>
#include <string>

#include "tests/experiments/gradzip_run_util.h"

namespace gradzip::testing {
namespace {

class CompressorRulesCli : public TrainRunTest {
 protected:
  /// A two-step simulated run (2 workers, 2 shards) named `name` under root_ with `args`.
  Result train(const std::string& name, const std::string& args, int width = 4) const {
    return gradzip("train --model resnet20 --width " + std::to_string(width) +
                       " --train-subset 256 --test-subset 64 --epochs 1 --max-steps 2 --batch-size 32 --cluster sim "
                       "--workers 2 --shards 2 --loader-threads 1 --data-dir " + kFashion + " " + args +
                       " --run-dir '" + (root_ / name).string() + "'",
                   root_ / (name + ".log"));
  }
  nlohmann::json summary(const std::string& name) const { return read_json(root_ / name / "summary.json"); }
};

TEST_F(CompressorRulesCli, EveryBucketRecordsTheSpecItsRuleNames) {
  const Result r = train("rules", "--min-compress-numel 0 --compressor ef+topk:ratio=0.05 "
                                  "--compressor-rules '*bn*=identity;fc.*=ef+zipml:bits=3'");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto s = summary("rules");
  ASSERT_EQ(s["status"], "complete") << s.dump(2);
  // zipml is unbiased: its EF memory got the safe scale 1/(1+omega) spelled out.
  const std::string zipml = "ef:scale=0.0233667139+zipml:bits=3,bucket=4096,refine=4,scope=bucket";
  EXPECT_EQ(s["compressor"].get<std::string>().rfind("rules:*bn*=none+identity;fc.*=" + zipml + ";*=ef+topk:", 0), 0u)
      << s["compressor"];
  int bn = 0, fc = 0, other = 0;
  for (const auto& b : s["buckets"]) {
    const std::string spec = b["spec"];
    ASSERT_FALSE(b["tensors"].empty());
    for (const auto& t : b["tensors"]) {  // one bucket, one spec: every tensor in it agrees
      const std::string name = t;
      if (name.find("bn") != std::string::npos) {
        EXPECT_EQ(spec, "none+identity") << name;
        ++bn;
      } else if (name.rfind("fc.", 0) == 0) {
        EXPECT_EQ(spec, zipml) << name;
        ++fc;
      } else {
        EXPECT_EQ(spec.rfind("ef+topk:", 0), 0u) << name << " " << spec;
        ++other;
      }
    }
  }
  EXPECT_GT(bn, 0);
  EXPECT_EQ(fc, 2);
  EXPECT_GT(other, 0);
}

TEST_F(CompressorRulesCli, SizeRulesFromAFile) {
  const fs::path file = root_ / "rules.txt";
  {
    std::ofstream f(file);
    f << "# small tensors as fp32, the rest 8-bit\nnumel<1024=identity\n*=int8\n";
  }
  const Result r = train("file", "--min-compress-numel 0 --compressor-rules '" + file.string() + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto s = summary("file");
  ASSERT_EQ(s["status"], "complete");
  for (const auto& b : s["buckets"]) {
    const std::string spec = b["spec"];
    if (spec == "none+identity") continue;
    EXPECT_EQ(spec.rfind("none+int8:", 0), 0u) << spec;
    EXPECT_GE(b["numel"].get<std::uint64_t>(), 1024u) << b.dump();
  }
}

TEST_F(CompressorRulesCli, SingleSpecRulesKeepBucketsAndWireBytes) {
  const Result plain = train("plain", "--compressor fp16");
  const Result rules = train("single", "--compressor identity --compressor-rules '*bn*=fp16;*=fp16'");
  ASSERT_EQ(plain.status, 0) << plain.output;
  ASSERT_EQ(rules.status, 0) << rules.output;
  const auto a = summary("plain"), b = summary("single");
  ASSERT_EQ(a["buckets"].size(), b["buckets"].size());
  for (std::size_t i = 0; i < a["buckets"].size(); ++i) {
    EXPECT_EQ(a["buckets"][i]["offset"], b["buckets"][i]["offset"]);
    EXPECT_EQ(a["buckets"][i]["numel"], b["buckets"][i]["numel"]);
    EXPECT_EQ(a["buckets"][i]["spec"], b["buckets"][i]["spec"]);
  }
  EXPECT_EQ(a["compressor"], b["compressor"]);  // the rule list reduces to the plain spec
  EXPECT_GT(a["bytes_up"].get<double>(), 0.0);
  EXPECT_EQ(a["bytes_up"], b["bytes_up"]);
}

TEST_F(CompressorRulesCli, BadRulesExitTwoWithOneLine) {
  for (const char* rules : {"'numel<abc=identity'", "'*=qsgd:bits=99'", "'" "/no/such/rules-file" "'"}) {
    const Result r = train("bad", std::string("--compressor-rules ") + rules);
    EXPECT_EQ(r.status, 2) << rules << ": " << r.output;
    EXPECT_NE(r.output.find("rule"), std::string::npos) << r.output;
  }
}

TEST_F(CompressorRulesCli, AutoChoiceOnASlowLinkIsRecordedInSummary) {
  // Width 8: the largest tensor (9216 elements) takes ~0.3 ms on eth1g as fp32.
  const Result r = train("auto", "--min-compress-numel 0 --compressor auto:link=eth1g,min_bits=2", 8);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto s = summary("auto");
  ASSERT_EQ(s["status"], "complete");
  const auto& a = s["auto"];
  ASSERT_TRUE(a.is_object()) << s.dump(2);
  EXPECT_EQ(a["link"], "eth1g");
  EXPECT_GT(a["modeled_step_seconds"].get<double>(), 0.0);
  EXPECT_LT(a["modeled_step_seconds"].get<double>(), a["modeled_step_seconds_identity"].get<double>());
  std::uint64_t largest = 0, smallest = ~0ull;
  std::string largest_spec, smallest_spec;
  for (const auto& c : a["choices"]) {
    const auto n = c["numel"].get<std::uint64_t>();
    EXPECT_GE(c["bits_per_element"].get<double>(), 2.0) << c.dump();
    if (n > largest) largest = n, largest_spec = c["spec"];
    if (n < smallest) smallest = n, smallest_spec = c["spec"];
  }
  EXPECT_NE(largest_spec, "none+identity") << "largest tensor (" << largest << " elements) on eth1g";
  EXPECT_EQ(smallest_spec, "none+identity") << "smallest tensor (" << smallest << " elements)";
  // The buckets follow the choice.
  EXPECT_EQ(s["compressor"].get<std::string>().rfind("rules:", 0), 0u);
  bool compressed_bucket = false;
  for (const auto& b : s["buckets"]) compressed_bucket |= b["spec"] != "none+identity";
  EXPECT_TRUE(compressed_bucket);
}

}  // namespace
}  // namespace gradzip::testing
