// The fuzz harnesses (tests/fuzz/harness.h) run in every build, without libFuzzer: each
// committed seed (tests/fuzz/corpus/<target>/) and regression input
// (tests/fuzz/regressions/<target>/, inputs that once broke a parser), plus truncations
// and byte flips of each, must keep the parsers' contracts; freshly generated seeds must
// too, and they must hold a message of every registered codec.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "quant/registry.h"
#include "quant/wire.h"
#include "tests/fuzz/harness.h"
#include "tests/fuzz/util.h"

namespace gradzip::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& f : fs::directory_iterator(dir)) {
    if (f.is_regular_file()) out.push_back(f.path().string());
  }
  return out;
}

/// Runs `input` and variants of it (prefixes, single-byte flips) through the harness;
/// returns the number of failures (each reported).
int replay(const Target& t, const std::string& name, const std::vector<std::uint8_t>& input) {
  std::vector<std::vector<std::uint8_t>> variants{input};
  const std::size_t n = input.size();
  for (const std::size_t len : {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{41}, n / 2, n - 1}) {
    if (len < n) variants.emplace_back(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(len));
  }
  for (std::size_t k = 0; k < 12 && n > 0; ++k) {
    auto v = input;
    v[(k * 2654435761u) % n] ^= static_cast<std::uint8_t>(1u << (k % 8));
    variants.push_back(v);
  }
  int failures = 0;
  for (std::size_t i = 0; i < variants.size(); ++i) {
    try {
      t.run(variants[i].data(), variants[i].size());
    } catch (const std::exception& e) {
      ADD_FAILURE() << t.name << " harness on " << name << " (variant " << i << ", " << variants[i].size()
                    << " bytes): " << e.what();
      ++failures;
    }
  }
  return failures;
}

class FuzzReplay : public ::testing::TestWithParam<Target> {};

TEST_P(FuzzReplay, CommittedSeedsAndRegressionInputsKeepTheParserContract) {
  const Target& t = GetParam();
  const fs::path root = fs::path(GRADZIP_SOURCE_DIR) / "tests/fuzz";
  const auto seeds = files_in(root / "corpus" / t.name);
  EXPECT_FALSE(seeds.empty()) << "no committed seeds for " << t.name << " (run: bash scripts/fuzz --make-seeds)";
  int failures = 0;
  for (const auto& path : seeds) failures += replay(t, path, read_file(path));
  for (const auto& path : files_in(root / "regressions" / t.name)) failures += replay(t, path, read_file(path));
  EXPECT_EQ(failures, 0);
}

TEST_P(FuzzReplay, FreshlyGeneratedSeedsKeepTheParserContract) {
  const Target& t = GetParam();
  const fs::path out = fs::path(GRADZIP_BINARY_DIR) / "fuzz-replay-seeds" / t.name;
  write_seeds(GRADZIP_SOURCE_DIR, "/usr/share/datasets/fashion-mnist", out.string());
  const auto seeds = files_in(out / t.name);
  EXPECT_FALSE(seeds.empty());
  int failures = 0;
  for (const auto& path : seeds) failures += replay(t, path, read_file(path));
  EXPECT_EQ(failures, 0);
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplay, ::testing::ValuesIn(targets()),
                         [](const ::testing::TestParamInfo<Target>& p) { return std::string(p.param.name); });

TEST(FuzzSeeds, HoldAValidMessageOfEveryRegisteredCodec) {
  const fs::path out = fs::path(GRADZIP_BINARY_DIR) / "fuzz-codec-seeds";
  write_seeds(GRADZIP_SOURCE_DIR, "/usr/share/datasets/fashion-mnist", out.string());
  std::set<quant::CodecId> seen;
  for (const auto& path : files_in(out / "codec")) {
    const auto input = read_file(path);
    quant::MessageView view;
    // Seeds are [control byte][message]; a seed with control bit 0 clear is a valid message.
    if (!input.empty() && (input[0] & 1) == 0 && quant::parse_message(input.data() + 1, input.size() - 1, &view).ok()) {
      seen.insert(view.codec);
    }
  }
  for (const quant::CodecEntry* e : quant::codec_entries()) {
    EXPECT_EQ(seen.count(e->id), 1u) << "no seed message of codec " << e->name;
  }
}

}  // namespace
}  // namespace gradzip::fuzz
