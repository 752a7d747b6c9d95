// The message checksum (quant/wire.h) is XXH3-64 of header[0, 32) ++ params ++ payload
// whichever variant computes it: the AVX2 build (quant/checksum_avx2.cc, picked at run
// time) and the system libxxhash must agree on every length, across XXH3's size classes
// (0-16, 17-128, 129-240 bytes, then stripes and blocks), or messages encoded on one CPU
// would be refused on another. Also: the identity codec's tiled encode (copy and check
// per tile) writes the reference bytes and refuses a NaN or Inf in any tile.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <xxhash.h>

#include "quant/cpu.h"
#include "quant/registry.h"
#include "quant/wire.h"

namespace gradzip::quant {
namespace {

// A header-shaped buffer of kHeaderBytes + body bytes with random contents.
std::vector<std::uint8_t> random_message(std::size_t body, unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<std::uint8_t> m(kHeaderBytes + body);
  for (auto& b : m) b = static_cast<std::uint8_t>(gen());
  return m;
}

// The definition, from the library: XXH3-64 of the concatenated ranges.
std::uint64_t reference_checksum(const std::vector<std::uint8_t>& m, std::size_t body) {
  std::vector<std::uint8_t> cat(m.begin(), m.begin() + 32);
  cat.insert(cat.end(), m.begin() + kHeaderBytes, m.begin() + kHeaderBytes + body);
  return XXH3_64bits(cat.data(), cat.size());
}

const std::size_t kBodies[] = {0, 1, 7, 16, 17, 95, 96, 97, 208, 209, 1023, 1025, 4097, 65543, (1u << 20) + 13};

TEST(WireChecksum, DispatchedEqualsLibraryXxh3AtEveryLength) {
  unsigned seed = 1;
  for (std::size_t body : kBodies) {
    const auto m = random_message(body, seed++);
    for (std::size_t params : {std::size_t{0}, std::size_t{5}}) {
      if (params > body) continue;
      EXPECT_EQ(message_checksum(m.data(), params, body - params), reference_checksum(m, body)) << "body " << body;
    }
  }
}

TEST(WireChecksum, PortableAndAvx2VariantsAgree) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU (or build): only the portable variant exists";
  unsigned seed = 100;
  for (std::size_t body : kBodies) {
    const auto m = random_message(body, seed++);
    const std::uint64_t fast = message_checksum(m.data(), 0, body);
    ForcePortableSimdForTest portable;
    EXPECT_EQ(message_checksum(m.data(), 0, body), fast) << "body " << body;
  }
}

TEST(WireChecksum, CorruptionOfAnyCheckedByteIsDetected) {
  auto m = random_message(5000, 7);
  const std::uint64_t good = message_checksum(m.data(), 0, 5000);
  for (std::size_t at : {std::size_t{0}, std::size_t{31}, kHeaderBytes, kHeaderBytes + 4999}) {
    m[at] ^= 0x10;
    EXPECT_NE(message_checksum(m.data(), 0, 5000), good) << "byte " << at;
    m[at] ^= 0x10;
  }
}

TEST(IdentityEncode, TiledEncodeWritesTheReferenceBytes) {
  auto codec = make_codec("identity");
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{4095}, std::size_t{4096}, std::size_t{4097},
                        std::size_t{3 * 4096 + 11}}) {
    std::vector<float> x(n);
    std::mt19937 gen(static_cast<unsigned>(n));
    std::normal_distribution<float> normal;
    for (auto& v : x) v = normal(gen);
    const auto msg = codec->encode(x.data(), n, SeedContext{});
    // The format: header, then the fp32 values as they are, checksummed.
    std::vector<std::uint8_t> ref(kHeaderBytes + 4 * n);
    if (n != 0) std::memcpy(ref.data() + kHeaderBytes, x.data(), 4 * n);
    write_header(ref.data(), CodecId::kIdentity, 0, n, 0, 4 * n);
    EXPECT_EQ(msg, ref) << "n " << n;
  }
}

TEST(IdentityEncode, NonFiniteValueInAnyTileIsRefused) {
  auto codec = make_codec("identity");
  const std::size_t n = 3 * 4096 + 11;
  std::vector<std::uint8_t> out(codec->max_encoded_bytes(n));
  for (std::size_t at : {std::size_t{0}, std::size_t{4095}, std::size_t{4096}, n - 1}) {
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
      std::vector<float> x(n, 0.25f);
      x[at] = bad;
      std::size_t bytes = 0;
      const Status st = codec->encode(x.data(), n, SeedContext{}, out.data(), out.size(), &bytes);
      EXPECT_EQ(st.code(), Errc::kNonFiniteInput) << "index " << at;
    }
  }
}

}  // namespace
}  // namespace gradzip::quant
