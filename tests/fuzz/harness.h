// Fuzz harnesses: one function per untrusted input format gradzip reads (wire messages
// of every registered codec, the parameter-server envelope and handshake, INI config
// files, IDX / CIFAR / record data files). Each takes arbitrary bytes, hands them to the
// real parser and checks the parser's contract:
//   - bad input gets the typed error the API promises (a quant::Status, DataError /
//     ConfigError, UsageError, `false` with a reason), never a crash, an out-of-bounds
//     access, undefined behaviour or another exception;
//   - on an error the caller's output is untouched;
//   - accepted input satisfies the documented invariants and round-trips.
// A violated property throws PropertyViolation, which libFuzzer reports as a crash
// (uncaught exception) and GoogleTest as a failure.
//
// The same functions run in three places: the libFuzzer executables fuzz_<target>
// (clang, ASan+UBSan; tests/fuzz/fuzz_main.cc, `scripts/fuzz`), the replay test of the
// committed seed corpora and regression inputs (every build, tests/fuzz/replay_test.cc),
// and write_seeds(), which produces the seed corpora from real messages and files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace gradzip::fuzz {

/// A parser broke its contract on some input (see the file comment).
class PropertyViolation : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// Throws PropertyViolation(what) when `ok` is false; `what` is evaluated only then (the
/// harnesses run millions of times: no message is built for a property that holds).
#define GRADZIP_FUZZ_REQUIRE(ok, what)                                  \
  do {                                                                   \
    if (!(ok)) throw ::gradzip::fuzz::PropertyViolation(std::string(what)); \
  } while (0)

/// Input: [control byte][gradzip message]. Control bit 0 clear: the harness first makes
/// the payload length and the checksum agree with the bytes present (so mutations reach
/// the codec's payload decoder); set: the bytes go to the decoders as they are. Bits 1-3
/// pick the decode_add scale. Decodes with every registered codec (quant/registry.h).
void codec(const std::uint8_t* data, std::size_t size);
/// Input: one frame for comm::read_envelope; and [envelope (40 bytes)][hello body] for
/// read_envelope + comm::signature_from_json.
void protocol(const std::uint8_t* data, std::size_t size);
/// Input: an INI file for `gradzip <command> --config FILE` (experiments/cli.h) with
/// the shared option groups of experiments/options.h bound.
void config(const std::uint8_t* data, std::size_t size);
/// Input: [u32 LE length L][IDX image file, L bytes][IDX label file]; read_idx and
/// read_idx_dataset (trainer/dataset.h), plain or gzip.
void idx(const std::uint8_t* data, std::size_t size);
/// Input: [control byte: bit 0 = CIFAR-100][CIFAR binary batch file]; read_cifar_binary.
void cifar(const std::uint8_t* data, std::size_t size);
/// Input: one record shard file (trainer/records.h); read_records.
void records(const std::uint8_t* data, std::size_t size);

struct Target {
  const char* name;  ///< fuzz_<name> executable, corpus folder tests/fuzz/corpus/<name>
  void (*run)(const std::uint8_t* data, std::size_t size);
};
/// Every harness, in a fixed order.
const std::vector<Target>& targets();

/// Writes seed inputs into out_dir/<target>/ (folders created; existing files with the
/// same names overwritten): messages of every registered codec and the golden vectors of
/// tests/quant/golden, protocol envelopes and a handshake, the configs of
/// experiments/configs, and the first Fashion-MNIST images (from `fashion_mnist_dir`,
/// synthetic images when it is missing) as IDX, CIFAR and record files.
/// `source_dir` is the repository root. Throws std::runtime_error on an I/O error.
void write_seeds(const std::string& source_dir, const std::string& fashion_mnist_dir, const std::string& out_dir);

}  // namespace gradzip::fuzz
