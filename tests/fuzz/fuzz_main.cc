// libFuzzer entry point of one harness (tests/fuzz/harness.h); CMake builds it once per
// target with GRADZIP_FUZZ_TARGET set to the harness function (fuzz_codec, ...).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  gradzip::fuzz::GRADZIP_FUZZ_TARGET(data, size);
  return 0;
}
