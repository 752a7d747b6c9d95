// Fuzz harnesses of the data-file readers (trainer/dataset.h, trainer/records.h; these
// translation units are torch-free and compiled into the harness directly). A bad file is
// a DataError (or ConfigError) naming the file; an accepted file yields a Dataset that
// keeps the invariants of trainer/dataset.h.
#include <algorithm>
#include <cstring>
#include <string>

#include "tests/fuzz/harness.h"
#include "tests/fuzz/util.h"
#include "trainer/dataset.h"
#include "trainer/errors.h"
#include "trainer/records.h"

namespace gradzip::fuzz {
namespace {

using trainer::DataError;
using trainer::Dataset;

/// The invariants every reader promises for the Dataset it returns.
void check_dataset(const Dataset& d, const std::string& reader) {
  GRADZIP_FUZZ_REQUIRE(d.channels > 0 && d.height > 0 && d.width > 0,
          reader + " returned an image shape " + std::to_string(d.channels) + "x" + std::to_string(d.height) + "x" +
              std::to_string(d.width));
  GRADZIP_FUZZ_REQUIRE(d.classes > 0, reader + " returned " + std::to_string(d.classes) + " classes");
  std::size_t want = 0;
  const bool overflow = __builtin_mul_overflow(d.size(), d.image_bytes(), &want);
  GRADZIP_FUZZ_REQUIRE(!overflow && want == d.images.size(),
          reader + " returned " + std::to_string(d.images.size()) + " pixel bytes for " + std::to_string(d.size()) +
              " images of " + std::to_string(d.image_bytes()) + " bytes");
  for (const std::int32_t label : d.labels) {
    GRADZIP_FUZZ_REQUIRE(label >= 0 && label < d.classes, reader + " returned label " + std::to_string(label));
  }
}

/// A DataError must name the file it is about.
void check_error(const DataError& e) {
  GRADZIP_FUZZ_REQUIRE(!e.path().empty() && std::string(e.what()).find(e.path()) != std::string::npos,
          std::string("DataError does not name its file: ") + e.what());
}

}  // namespace

void idx(const std::uint8_t* data, std::size_t size) {
  static ScratchFile images("images.idx");
  static ScratchFile labels("labels.idx");
  std::uint32_t first = 0;
  if (size >= 4) std::memcpy(&first, data, 4);
  const std::size_t body = size >= 4 ? size - 4 : 0;
  const std::size_t image_bytes = std::min<std::size_t>(first, body);
  images.write(data + (size - body), image_bytes);
  labels.write(data + (size - body) + image_bytes, body - image_bytes);

  try {
    const trainer::IdxArray a = trainer::read_idx(images.path());
    std::uint64_t count = 1;
    bool overflow = false;
    for (const std::uint32_t d : a.dims) overflow = __builtin_mul_overflow(count, std::uint64_t{d}, &count) || overflow;
    GRADZIP_FUZZ_REQUIRE(!overflow, "read_idx accepted sizes whose product exceeds 2^64");
    GRADZIP_FUZZ_REQUIRE(!a.dims.empty() && a.dims.size() <= 4, "read_idx returned rank " + std::to_string(a.dims.size()));
    GRADZIP_FUZZ_REQUIRE(count == a.data.size(), "read_idx returned " + std::to_string(a.data.size()) +
                                        " bytes for dims whose product is " + std::to_string(count));
  } catch (const DataError& e) {
    check_error(e);
  }
  try {
    check_dataset(trainer::read_idx_dataset(images.path(), labels.path(), 10), "read_idx_dataset");
  } catch (const DataError& e) {
    check_error(e);
  }
}

void cifar(const std::uint8_t* data, std::size_t size) {
  static ScratchFile file("batch.bin");
  if (size == 0) return;
  const int classes = (data[0] & 1) != 0 ? 100 : 10;
  file.write(data + 1, size - 1);
  try {
    const Dataset d = trainer::read_cifar_binary({file.path()}, classes);
    check_dataset(d, "read_cifar_binary");
    GRADZIP_FUZZ_REQUIRE(d.classes == classes && d.channels == 3 && d.height == 32 && d.width == 32,
            "read_cifar_binary returned another shape or class count than CIFAR's");
  } catch (const DataError& e) {
    check_error(e);
  }
}

void records(const std::uint8_t* data, std::size_t size) {
  static ScratchFile file("shard.gzr");
  file.write(data, size);
  try {
    check_dataset(trainer::read_records({file.path()}), "read_records");
  } catch (const DataError& e) {
    check_error(e);
  }
}

}  // namespace gradzip::fuzz
