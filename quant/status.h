// Typed results for everything in quant/: a codec, a decoder or a spec parser never
// aborts on bad input; it answers with an Errc and a message a person can act on.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace gradzip::quant {

/// Error codes. The numeric values are stable (they appear in logs and metrics).
enum class Errc : std::uint8_t {
  kOk = 0,
  kTruncated = 1,         ///< fewer bytes than the header or the declared lengths need
  kBadMagic = 2,          ///< not a gradzip message
  kBadVersion = 3,        ///< wire version this build does not read
  kUnknownCodec = 4,      ///< codec id not in the registry
  kCodecMismatch = 5,     ///< message codec differs from the expected codec
  kBadLength = 6,         ///< declared lengths disagree with each other or with the bytes
  kBadChecksum = 7,       ///< xxh3 of header+params+payload does not match
  kBadParams = 8,         ///< codec parameters in the message are out of range
  kIndexOutOfRange = 9,   ///< a sparse index >= element count
  kIndicesUnsorted = 10,  ///< sparse indices not strictly increasing
  kNonFiniteScale = 11,   ///< a scale/norm in the message is NaN or Inf
  kNonFiniteInput = 12,   ///< the gradient handed to encode holds NaN or Inf
  kSizeMismatch = 13,     ///< element count differs from the caller's buffer
  kBufferTooSmall = 14,   ///< output capacity below max_encoded_bytes(n)
  kInvalidArgument = 15,  ///< a caller passed an argument outside the contract
  kCuda = 16,             ///< a CUDA runtime call failed
};

/// Stable lower-case name of an error code, e.g. "bad_checksum".
const char* errc_name(Errc code) noexcept;

/// Result of an operation: kOk, or an error code with a human-readable message.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Errc code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const noexcept { return code_ == Errc::kOk; }
  Errc code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  /// "bad_checksum: xxh3 mismatch (header says 0x.., computed 0x..)"
  std::string to_string() const;

 private:
  Errc code_ = Errc::kOk;
  std::string message_;
};

/// Thrown by the convenience wrappers that return values instead of a Status.
class QuantError : public std::runtime_error {
 public:
  explicit QuantError(const Status& status)
      : std::runtime_error(status.to_string()), code_(status.code()) {}
  Errc code() const noexcept { return code_; }

 private:
  Errc code_;
};

/// A bad compressor/memory spec string: names the key, the value and what is allowed.
class SpecError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace gradzip::quant

/// Propagate a non-OK Status to the caller.
#define GZ_RETURN_IF_ERROR(expr)                  \
  do {                                            \
    ::gradzip::quant::Status gz_status_ = (expr); \
    if (!gz_status_.ok()) return gz_status_;      \
  } while (0)
