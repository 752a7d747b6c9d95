#include "quant/status.h"

namespace gradzip::quant {

const char* errc_name(Errc code) noexcept {
  switch (code) {
    case Errc::kOk: return "ok";
    case Errc::kTruncated: return "truncated";
    case Errc::kBadMagic: return "bad_magic";
    case Errc::kBadVersion: return "bad_version";
    case Errc::kUnknownCodec: return "unknown_codec";
    case Errc::kCodecMismatch: return "codec_mismatch";
    case Errc::kBadLength: return "bad_length";
    case Errc::kBadChecksum: return "bad_checksum";
    case Errc::kBadParams: return "bad_params";
    case Errc::kIndexOutOfRange: return "index_out_of_range";
    case Errc::kIndicesUnsorted: return "indices_unsorted";
    case Errc::kNonFiniteScale: return "non_finite_scale";
    case Errc::kNonFiniteInput: return "non_finite_input";
    case Errc::kSizeMismatch: return "size_mismatch";
    case Errc::kBufferTooSmall: return "buffer_too_small";
    case Errc::kInvalidArgument: return "invalid_argument";
    case Errc::kCuda: return "cuda";
  }
  return "unknown_error";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  std::string s = errc_name(code_);
  if (!message_.empty()) s += ": " + message_;
  return s;
}

}  // namespace gradzip::quant
