// Downstream use of an installed gradzip: every registered codec encodes and decodes a
// gradient; identity must be exact, every message must decode to finite values, and a
// corrupted message must be refused with a typed error. Exit code 0 only if all hold.
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "experiments/runlog/hostinfo.h"
#include "quant/registry.h"

int main() {
  using namespace gradzip::quant;
  const std::size_t n = 1237;
  std::vector<float> grad(n);
  for (std::size_t i = 0; i < n; ++i) grad[i] = std::sin(0.37f * static_cast<float>(i)) * (1.0f + i % 7);

  int failures = 0;
  for (const CodecEntry* entry : codec_entries()) {
    std::unique_ptr<Codec> codec;
    try {
      codec = make_codec(entry->name);
    } catch (const SpecError& e) {  // a codec without defaults for every parameter
      std::printf("skip %s: %s\n", entry->name.c_str(), e.what());
      continue;
    }
    SeedContext ctx{};
    const std::vector<std::uint8_t> msg = codec->encode(grad.data(), n, ctx);
    std::vector<float> out(n, -7.0f);
    const Status st = codec->decode(msg.data(), msg.size(), out.data(), n);
    if (!st.ok()) {
      std::printf("FAIL %s: decode: %s\n", entry->name.c_str(), st.to_string().c_str());
      ++failures;
      continue;
    }
    for (float v : out) {
      if (!std::isfinite(v)) {
        std::printf("FAIL %s: non-finite decoded value\n", entry->name.c_str());
        ++failures;
        break;
      }
    }
    if (entry->name == "identity" && out != grad) {
      std::printf("FAIL identity: round trip not exact\n");
      ++failures;
    }
    std::vector<std::uint8_t> bad = msg;
    bad[bad.size() / 2] ^= 0x5a;
    if (codec->decode(bad.data(), bad.size(), out.data(), n).ok()) {
      std::printf("FAIL %s: corrupted message accepted\n", entry->name.c_str());
      ++failures;
    }
    std::printf("%-10s %zu elements -> %zu bytes\n", entry->name.c_str(), n, msg.size());
  }
  std::printf("gradzip %s (%s): %zu codecs, %d failures\n", gradzip::runlog::build_info().version.c_str(),
              gradzip::runlog::build_info().git_revision.c_str(), codec_entries().size(), failures);
  return failures == 0 && !codec_entries().empty() ? 0 : 1;
}
