// gradzip_fuzz_seeds: writes the seed corpora (tests/fuzz/harness.h, write_seeds).
// usage: gradzip_fuzz_seeds OUT_DIR [FASHION_MNIST_DIR]
// `scripts/fuzz --make-seeds` runs it into tests/fuzz/corpus; every fuzz run also runs it
// into the build folder, so a newly registered codec is fuzzed from its own messages.
#include <exception>
#include <iostream>

#include "tests/fuzz/harness.h"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: gradzip_fuzz_seeds OUT_DIR [FASHION_MNIST_DIR]\n";
    return 2;
  }
  try {
    gradzip::fuzz::write_seeds(GRADZIP_SOURCE_DIR, argc == 3 ? argv[2] : "/usr/share/datasets/fashion-mnist", argv[1]);
  } catch (const std::exception& e) {
    std::cerr << "gradzip_fuzz_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
