// Golden wire vectors: the full message of each codec spec for a fixed small input and a
// fixed SeedContext, checked in under tests/quant/golden/<spec>.hex. The test compares
// byte for byte, so any change of a wire format (or of a codec's arithmetic or random
// stream) is deliberate: it needs a wire version bump or a documented reason, and the
// CUDA twins must reproduce these bytes too.
//
// Regenerate (after a deliberate change, from a verified implementation):
//   GRADZIP_UPDATE_GOLDEN=1 ./build/tests/quant/gradzip_quant_tests --gtest_filter='Golden*'
// which rewrites the files in the source tree (GRADZIP_SOURCE_DIR); review the diff.
// Every registered codec is pinned with its default params (tests/quant/golden/<name>.hex);
// extra_golden_specs() adds non-default params. Adding a codec: regenerate, review the new file.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "quant/registry.h"
#include "tests/quant/codec_test_util.h"

namespace gradzip::quant {
namespace {

/// Specs with non-default params pinned in addition to every codec's defaults.
const std::vector<std::string>& extra_golden_specs() {
  static const std::vector<std::string> specs = {
      "int8:bucket=16",
      "qsgd:bits=3,bucket=10,norm=max",
      "qsgd:bits=8,bucket=16",
      "terngrad:bucket=16",
      "terngrad:bucket=16,clip=2.5",
      "scaled-sign:bucket=16",
      "onebit:bucket=16",
      "topk:ratio=0.2",
      "topk:k=9,values=fp16",
      "topk:k=5,values=int8",
      "randk:k=6,scale=true",
      "threshold:tau=0.1,values=fp16",
      "dgc:ratio=0.1",
      "zipml:bits=2,bucket=16",
  };
  return specs;
}

/// Every registered codec with its default params (the spec is its bare name), then the
/// extra specs of registered codecs.
std::vector<std::string> golden_specs() {
  std::vector<std::string> specs;
  for (const auto* e : codec_entries()) specs.push_back(e->name);
  for (const auto& s : extra_golden_specs()) {
    if (find_codec(codec_testing::spec_name(s)) != nullptr) specs.push_back(s);
  }
  return specs;
}

/// 37 exactly representable values over several magnitudes, both signs, 0 and -0.
std::vector<float> golden_input() {
  std::vector<float> x(37);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const int k = static_cast<int>((i * 73) % 41) - 20;
    float v = static_cast<float>(k) * 0.125f;
    for (std::size_t e = 0; e < i % 5; ++e) v *= 0.5f;
    if (i % 7 == 3) v *= 1024.0f;
    x[i] = v;
  }
  x[30] = -0.0f;
  return x;
}

const SeedContext kGoldenCtx{0x0123456789ABCDEFull, 42, 3, 5};

std::string golden_path(const std::string& spec) {
  std::string name = spec;
  for (char& c : name) {
    if (c == ':' || c == ',' || c == '=') c = '_';
  }
  return std::string(GRADZIP_SOURCE_DIR) + "/tests/quant/golden/" + name + ".hex";
}

std::string to_hex(const std::vector<std::uint8_t>& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    s += digits[bytes[i] >> 4];
    s += digits[bytes[i] & 15];
    if (i % 32 == 31 || i + 1 == bytes.size()) s += '\n';
  }
  return s;
}

/// Reads the hex lines of a golden file (lines starting with '#' are comments).
bool read_hex(const std::string& path, std::vector<std::uint8_t>* bytes) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line, hex;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] != '#') hex += line;
  }
  if (hex.size() % 2 != 0) return false;
  bytes->clear();
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    bytes->push_back(static_cast<std::uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  }
  return true;
}

TEST(Golden, MessagesMatchCheckedInBytes) {
  const bool update = std::getenv("GRADZIP_UPDATE_GOLDEN") != nullptr;
  const auto x = golden_input();
  for (const auto& spec : golden_specs()) {
    SCOPED_TRACE(spec);
    const auto codec = make_codec(spec);
    const auto msg = codec->encode(x.data(), x.size(), kGoldenCtx);
    const std::string path = golden_path(spec);
    if (update) {
      std::ofstream out(path);
      out << "# gradzip golden message: spec " << codec->spec()
          << ", 37-element golden_input(), SeedContext{seed 0x0123456789abcdef, step 42, worker 3, bucket 5}\n"
          << "# regenerate: GRADZIP_UPDATE_GOLDEN=1 gradzip_quant_tests --gtest_filter='Golden*'\n"
          << to_hex(msg);
      ASSERT_TRUE(out.good()) << "cannot write " << path;
      continue;
    }
    std::vector<std::uint8_t> golden;
    ASSERT_TRUE(read_hex(path, &golden)) << "missing or malformed " << path
                                         << " (run with GRADZIP_UPDATE_GOLDEN=1 to create it)";
    EXPECT_EQ(to_hex(msg), to_hex(golden)) << "wire bytes changed: a deliberate format change needs a version bump";
    // The checked-in message decodes, and to the same values as the fresh one.
    std::vector<float> a(x.size()), b(x.size());
    ASSERT_TRUE(codec->decode(golden.data(), golden.size(), a.data(), a.size()).ok());
    ASSERT_TRUE(decode_any(msg.data(), msg.size(), b.data(), b.size()).ok());
    EXPECT_EQ(a, b);
  }
}

TEST(Golden, EveryRegisteredCodecHasAGoldenFileForItsDefaults) {
  for (const auto* e : codec_entries()) {
    std::vector<std::uint8_t> bytes;
    EXPECT_TRUE(read_hex(golden_path(e->name), &bytes))
        << "codec '" << e->name << "' has no golden vector " << golden_path(e->name)
        << ": create it with GRADZIP_UPDATE_GOLDEN=1 gradzip_quant_tests --gtest_filter='Golden*' and review it";
  }
}

}  // namespace
}  // namespace gradzip::quant
