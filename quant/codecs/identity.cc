// Codec "identity": fp32 values as they are (the uncompressed baseline).
//
// Params: none (params_bytes = 0).
// Payload: numel little-endian IEEE-754 binary32 values. Size: 4 n bytes.
#include <cstring>

#include "quant/codecs/codecs.h"
#include "quant/codecs/elementwise.h"

namespace gradzip::quant {
namespace {

class IdentityCodec final : public Codec {
 public:
  CodecId id() const override { return CodecId::kIdentity; }
  std::string spec() const override { return "identity"; }

 protected:
  std::size_t params_bytes() const override { return 0; }
  void write_params(std::uint8_t*) const override {}
  std::size_t max_payload_bytes(std::size_t n) const override { return 4 * n; }
  std::size_t tile_alignment() const override { return 1; }
  std::size_t tile_region_bytes(int r, std::size_t c) const override { return r == 0 ? 4 * c : 0; }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext&, PayloadSink* sink) const override {
    if (!all_finite(grad, n)) return Status(Errc::kNonFiniteInput, "gradient holds NaN or Inf");
    if (n != 0) std::memcpy(sink->data, grad, 4 * n);
    sink->bytes = 4 * n;
    return Status::Ok();
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    GZ_RETURN_IF_ERROR(elementwise::check_message(m, "identity", 4));
    if (accumulate) {
      for (std::size_t i = 0; i < m.numel; ++i) emit<true>(out, i, load_le<float>(m.payload + 4 * i), scale);
    } else if (m.numel != 0) {
      std::memcpy(out, m.payload, 4 * m.numel);
    }
    return Status::Ok();
  }
};

/// The documented message size: 40 + 4n bytes.
std::size_t message_bytes(const Params&, std::uint64_t n, const std::vector<std::uint64_t>&) {
  return kHeaderBytes + 4 * n;
}

std::unique_ptr<Codec> make_identity(const Params&) { return std::make_unique<IdentityCodec>(); }

}  // namespace

const CodecEntry& identity_entry() {
  static const CodecEntry entry{"identity", CodecId::kIdentity, "fp32 values, uncompressed (32 bits/element)",
                                "baseline", {}, &make_identity, {&message_bytes}};
  return entry;
}

}  // namespace gradzip::quant
