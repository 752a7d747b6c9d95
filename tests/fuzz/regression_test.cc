// Inputs libFuzzer found that broke a parser (scripts/fuzz), each pinned to the typed
// error the parser now gives. The inputs are in tests/fuzz/regressions/<target>/ (the
// replay test runs them through the harnesses too).
#include <gtest/gtest.h>

#include <string>

#include "tests/fuzz/util.h"
#include "trainer/errors.h"
#include "trainer/records.h"

namespace gradzip::fuzz {
namespace {

std::vector<std::uint8_t> regression_input(const std::string& target, const std::string& name) {
  return read_file(std::string(GRADZIP_SOURCE_DIR) + "/tests/fuzz/regressions/" + target + "/" + name);
}

/// The message of the DataError `f` throws ("" when it throws nothing).
template <class F>
std::string data_error_of(F f) {
  try {
    f();
  } catch (const trainer::DataError& e) {
    return e.what();
  }
  return "";
}

// A record shard whose header claims 0x40000002 records of 28x28 pixels in a 672-byte
// file: read_records reserved count x record bytes (~1 TB) and died out of memory.
TEST(FuzzRegression, RecordShardCountingMoreRecordsThanItsSizeIsADataError) {
  ScratchFile shard("count.gzr");
  const auto bytes = regression_input("records", "record-count-0x40000002");
  shard.write(bytes.data(), bytes.size());
  const std::string what = data_error_of([&] { trainer::read_records({shard.path()}); });
  EXPECT_NE(what.find(shard.path()), std::string::npos) << what;
  EXPECT_NE(what.find("header promises 1073741826 records"), std::string::npos) << what;
}

}  // namespace
}  // namespace gradzip::fuzz
