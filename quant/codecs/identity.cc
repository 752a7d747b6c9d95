// Codec "identity": fp32 values as they are (the uncompressed baseline).
//
// Params: none (params_bytes = 0).
// Payload: numel little-endian IEEE-754 binary32 values. Size: 4 n bytes.
#include <algorithm>
#include <cstring>

#include "quant/codecs/codecs.h"
#include "quant/codecs/elementwise.h"
#include "quant/cpu.h"
#include "quant/half.h"

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
    // One pass over grad: each tile is copied, then checked while it is in L1 (a check of
    // the whole bucket, then a copy, read a multi-MiB bucket twice from memory; the
    // parameter server encodes every pull reply with this codec).
    constexpr std::size_t kTile = 4096;  // elements (16 KiB)
    for (std::size_t t0 = 0; t0 < n; t0 += kTile) {
      const std::size_t cnt = std::min(kTile, n - t0);
      std::memcpy(sink->data + 4 * t0, grad + t0, 4 * cnt);
      if (!all_finite(grad + t0, cnt)) return Status(Errc::kNonFiniteInput, "gradient holds NaN or Inf");
    }
    sink->bytes = 4 * n;
    return Status::Ok();
  }

  bool has_ef_tile() const override { return true; }
  /// One loop: p = g + e into the payload, next = p - p (the decoded message is p).
  AbsClass ef_tile(const EfTile& t, const SeedContext&) const override {
    const std::int32_t mx = with_simd([&]() __attribute__((always_inline)) {
      const float* __restrict g = t.g;
      const float* __restrict e = t.e;
      std::uint8_t* __restrict out = t.payload;
      float* __restrict next = t.next;
      const std::size_t count = t.cnt;  // a local: the byte stores would alias t
      std::int32_t m = 0;
      for (std::size_t j = 0; j < count; ++j) {
        const float p = compensate_one(g[j], e[j], &m);
        std::memcpy(out + 4 * j, &p, 4);
        next[j] = p - p;
      }
      return m;
    });
    return class_of_max_bits(mx);
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
