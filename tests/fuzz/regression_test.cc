// Inputs libFuzzer found that broke a parser (scripts/fuzz), each pinned to the typed
// error the parser now gives. The inputs are in tests/fuzz/regressions/<target>/ (the
// replay test runs them through the harnesses too).
#include <gtest/gtest.h>

#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "comm/protocol.h"
#include "experiments/cli.h"
#include "tests/fuzz/util.h"
#include "trainer/dataset.h"
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

/// Splits an idx harness input ([u32 LE length][images][labels]) into two scratch files.
struct IdxPair {
  ScratchFile images{"images.idx"};
  ScratchFile labels{"labels.idx"};
  explicit IdxPair(const std::vector<std::uint8_t>& input) {
    std::uint32_t first = 0;
    std::memcpy(&first, input.data(), 4);
    images.write(input.data() + 4, first);
    labels.write(input.data() + 4 + first, input.size() - 4 - first);
  }
};

// Found by reading read_idx while writing the idx harness (the harness then fails on it):
// images 16 x 2^30 x 2^30 with no pixel bytes. The product of the sizes wrapped around
// 2^64 to 0 = the bytes present, so read_idx_dataset returned 16 labels and no images.
TEST(FuzzRegression, IdxSizesWhoseProductWrapsPast2p64AreADataError) {
  IdxPair files(regression_input("idx", "sizes-wrap-2p64"));
  const std::string what = data_error_of([&] { trainer::read_idx(files.images.path()); });
  EXPECT_NE(what.find("multiply to more than 2^64"), std::string::npos) << what;
  EXPECT_NE(data_error_of([&] { trainer::read_idx_dataset(files.images.path(), files.labels.path()); }), "");
}

// Same origin: 5 images of 0 x 28 pixels were a valid data set of empty images.
TEST(FuzzRegression, IdxImagesOfZeroHeightAreADataError) {
  IdxPair files(regression_input("idx", "zero-height"));
  const std::string what =
      data_error_of([&] { trainer::read_idx_dataset(files.images.path(), files.labels.path()); });
  EXPECT_NE(what.find("image size 0 x 28 is outside 1..65536"), std::string::npos) << what;
}

/// signature_from_json's reason for refusing `text` ("" when it accepts it).
std::string signature_refusal(const std::uint8_t* text, std::size_t bytes) {
  comm::ModelSignature s;
  std::string why;
  return comm::signature_from_json(text, bytes, &s, &why) ? "" : why;
}

// A hello whose signature gives a tensor the shape [10333...3] (1.03e46, a JSON float):
// nlohmann converted it to int64 with a plain cast, undefined behaviour (UBSan).
TEST(FuzzRegression, HelloSignatureWithAFloatShapeEntryIsRefused) {
  const auto hello = regression_input("protocol", "shape-entry-1e46");
  ASSERT_GT(hello.size(), comm::kEnvelopeBytes);
  const std::string why = signature_refusal(hello.data() + comm::kEnvelopeBytes, hello.size() - comm::kEnvelopeBytes);
  EXPECT_NE(why.find("tensor 'f#.bias': shape entry 1.0333"), std::string::npos) << why;
}

// Same cause: a negative numel or shape entry read as a huge unsigned size.
TEST(FuzzRegression, SignatureWithNegativeSizesIsRefused) {
  const std::string negative_numel =
      R"({"compressor":"identity","downlink":"dense","placement":"","tensors":[{"name":"w","shape":[2],"numel":-1}]})";
  const std::string negative_dim =
      R"({"compressor":"identity","downlink":"dense","placement":"","tensors":[{"name":"w","shape":[-2],"numel":2}]})";
  const auto bytes = [](const std::string& s) { return reinterpret_cast<const std::uint8_t*>(s.data()); };
  EXPECT_NE(signature_refusal(bytes(negative_numel), negative_numel.size()).find("numel -1 is not a count"),
            std::string::npos);
  EXPECT_NE(signature_refusal(bytes(negative_dim), negative_dim.size()).find("shape entry -2 is not a size"),
            std::string::npos);
}

/// The UsageError message of parsing argv with a table of two options (--lr, --data-dir).
std::string usage_error_of(std::vector<const char*> argv) {
  double lr = 0.1;
  std::string data_dir;
  cli::OptionTable table("train", "regression test");
  table.add("lr", &lr, "learning rate");
  table.add("data-dir", &data_dir, "data folder");
  std::ostringstream out;
  try {
    table.parse(static_cast<int>(argv.size()), argv.data(), out);
  } catch (const cli::UsageError& e) {
    return e.what();
  }
  return "";
}

// A config line whose key holds Boost.PO placeholders ("lr-miargument
// ('%original_token%%value%')lestone=s="): Boost's message substitution never ended, so
// `gradzip train --config FILE` hung instead of exiting with code 2 (libFuzzer timeout).
TEST(FuzzRegression, ConfigKeyHoldingBoostPlaceholdersIsAUsageError) {
  ScratchFile ini("placeholder.ini");
  const auto bytes = regression_input("config", "key-with-boost-placeholders");
  ini.write(bytes.data(), bytes.size());
  const std::string what = usage_error_of({"train", "--config", ini.path().c_str()});
  EXPECT_NE(what.find("unrecognised or malformed option"), std::string::npos) << what;
  EXPECT_NE(what.find("lr-miargument ('%original_token%%value%')lestone"), std::string::npos) << what;
}

// The same loop on the command line: an unknown option spelled with a placeholder.
TEST(FuzzRegression, CommandLineOptionHoldingBoostPlaceholdersIsAUsageError) {
  for (const char* arg : {"--seed=%canonical_option%", "-x%original_token%", "--%canonical_option%=1"}) {
    const std::string what = usage_error_of({"train", arg});
    EXPECT_NE(what.find(std::string("unrecognised or malformed option '") + arg + "'"), std::string::npos) << what;
  }
  // A known option's value may hold '%': it is not an error.
  EXPECT_EQ(usage_error_of({"train", "--lr=0.5"}), "");
  EXPECT_NE(usage_error_of({"train", "--lr=%value%"}).find("bad value '%value%' for --lr"), std::string::npos);
}

}  // namespace
}  // namespace gradzip::fuzz
