// Fuzz harness of the wire decoders of every registered codec (quant/codec.h contract):
// decode and decode_add validate everything before they write; on an error the output is
// untouched; on success decode overwrites every element (two different prior contents
// give the same bits) and decode_add(scale 1) into zeros gives the same values. Every
// codec that is not the message's refuses it with kCodecMismatch.
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "quant/codec.h"
#include "quant/registry.h"
#include "tests/fuzz/harness.h"
#include "tests/fuzz/util.h"

namespace gradzip::fuzz {
namespace {

using quant::Codec;
using quant::Errc;
using quant::Status;

/// Largest element count the harness allocates for (sparse messages may declare up to
/// 2^34 elements with a few bytes of payload); larger ones are checked for refusal only.
constexpr std::uint64_t kMaxFuzzNumel = std::uint64_t{1} << 16;
constexpr std::uint8_t kControlRawBytes = 0x01;
constexpr std::uint32_t kFillA = 0x7FC0DEADu;  // two NaN patterns no decoder writes
constexpr std::uint32_t kFillB = 0xFFC0BEEFu;

const std::vector<std::unique_ptr<Codec>>& codecs() {
  static const std::vector<std::unique_ptr<Codec>> all = [] {
    std::vector<std::unique_ptr<Codec>> v;
    for (const quant::CodecEntry* e : quant::codec_entries()) v.push_back(quant::make_codec(e->name, {}));
    return v;
  }();
  return all;
}

float scale_for(std::uint8_t control) {
  static const float kScales[8] = {1.0f, -0.5f, 0.0f, 3.0e38f, 1.0e-30f, std::numeric_limits<float>::quiet_NaN(),
                                   std::numeric_limits<float>::infinity(), -2.0f};
  return kScales[(control >> 1) & 7];
}

/// Sets payload_bytes and the checksum so that the header agrees with the bytes present
/// (when params_bytes fits): a mutated payload then reaches the codec.
void make_consistent(std::vector<std::uint8_t>* msg) {
  if (msg->size() < quant::kHeaderBytes) return;
  std::uint8_t* m = msg->data();
  const std::uint64_t body = msg->size() - quant::kHeaderBytes;
  const auto params = quant::load_le<std::uint32_t>(m + 24);
  if (params > body) return;
  quant::store_le<std::uint64_t>(m + 16, body - params);
  quant::store_le<std::uint64_t>(m + 32, quant::message_checksum(m, params, body - params));
}

std::string who(const Codec& c, const char* op) { return "codec '" + c.spec() + "' " + op; }

/// Runs decode twice and decode_add twice on `msg` (n elements) and checks the contract.
void check_decoders(const Codec& c, const std::vector<std::uint8_t>& msg, std::size_t n, float scale) {
  GuardedFloats a(n, kFillA), b(n, kFillB);
  const Status sa = c.decode(msg.data(), msg.size(), a.data(), n);
  a.check_guards(who(c, "decode"));
  const Status sb = c.decode(msg.data(), msg.size(), b.data(), n);
  b.check_guards(who(c, "decode"));
  GRADZIP_FUZZ_REQUIRE(sa.code() == sb.code(), who(c, "decode") + " gave two answers for one message");
  if (!sa.ok()) {
    GRADZIP_FUZZ_REQUIRE(!sa.message().empty(), who(c, "decode") + " refused without a message");
    GRADZIP_FUZZ_REQUIRE(a.untouched() && b.untouched(), who(c, "decode") + " wrote into its output and then refused: " +
                                                sa.to_string());
  } else {
    GRADZIP_FUZZ_REQUIRE(same_bits(a, b), who(c, "decode") + " left elements of its output unwritten");
  }

  GuardedFloats acc(n, 0u);
  const Status s1 = c.decode_add(msg.data(), msg.size(), acc.data(), n, 1.0f);
  acc.check_guards(who(c, "decode_add"));
  GRADZIP_FUZZ_REQUIRE(s1.code() == sa.code(), who(c, "decode_add") + " answered " + s1.to_string() + ", decode " +
                                      sa.to_string());
  if (!s1.ok()) {
    GRADZIP_FUZZ_REQUIRE(acc.untouched(), who(c, "decode_add") + " wrote into its accumulator and then refused");
  } else {
    const std::size_t i = first_value_difference(acc, a);
    GRADZIP_FUZZ_REQUIRE(i == n, who(c, "decode_add") + "(scale 1) into zeros differs from decode at element " +
                                     std::to_string(i));
  }

  const std::uint32_t kOneAndAHalf = 0x3FC00000u;
  GuardedFloats acc2(n, kOneAndAHalf);
  const Status s2 = c.decode_add(msg.data(), msg.size(), acc2.data(), n, scale);
  acc2.check_guards(who(c, "decode_add"));
  if (std::isfinite(scale)) {
    GRADZIP_FUZZ_REQUIRE(s2.code() == sa.code(), who(c, "decode_add") + " with scale " + std::to_string(scale) + " answered " +
                                        s2.to_string() + ", decode " + sa.to_string());
  } else {
    GRADZIP_FUZZ_REQUIRE(!s2.ok(), who(c, "decode_add") + " accepted a non-finite scale");
  }
  if (!s2.ok()) GRADZIP_FUZZ_REQUIRE(acc2.untouched(), who(c, "decode_add") + " wrote into its accumulator and then refused");
}

}  // namespace

void codec(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const std::uint8_t control = data[0];
  std::vector<std::uint8_t> msg(data + 1, data + size);
  if ((control & kControlRawBytes) == 0) make_consistent(&msg);

  quant::MessageView view;
  const Status parsed = quant::parse_message(msg.data(), msg.size(), &view);
  if (!parsed.ok()) {
    // Every decoder runs parse_message first: each must refuse with the same error.
    GuardedFloats out(1, kFillA);
    for (const auto& c : codecs()) {
      const Status s = c->decode(msg.data(), msg.size(), out.data(), 1);
      GRADZIP_FUZZ_REQUIRE(s.code() == parsed.code(), who(*c, "decode") + " answered " + s.to_string() + " to a message that " +
                                             "parse_message refuses with " + parsed.to_string());
    }
    GRADZIP_FUZZ_REQUIRE(out.untouched(), "a decoder wrote into its output for an unparseable message");
    return;
  }

  const bool registered = quant::find_codec(view.codec) != nullptr;
  if (view.numel > kMaxFuzzNumel) {
    // Too large to allocate here: a 1-element buffer must be refused, untouched.
    GuardedFloats out(1, kFillA);
    for (const auto& c : codecs()) {
      const Status s = c->decode(msg.data(), msg.size(), out.data(), 1);
      GRADZIP_FUZZ_REQUIRE(s.code() == (c->id() == view.codec ? Errc::kSizeMismatch : Errc::kCodecMismatch),
              who(*c, "decode") + " answered " + s.to_string() + " to a message of " + std::to_string(view.numel) +
                  " elements into a buffer of 1");
    }
    GRADZIP_FUZZ_REQUIRE(out.untouched(), "a decoder wrote into a buffer of the wrong size");
    return;
  }

  const auto n = static_cast<std::size_t>(view.numel);
  const float scale = scale_for(control);
  GuardedFloats foreign(n, kFillA);
  for (const auto& c : codecs()) {
    if (c->id() == view.codec) {
      check_decoders(*c, msg, n, scale);
      continue;
    }
    const Status s = c->decode(msg.data(), msg.size(), foreign.data(), n);
    GRADZIP_FUZZ_REQUIRE(s.code() == Errc::kCodecMismatch,
            who(*c, "decode") + " answered " + s.to_string() + " to another codec's message");
  }
  GRADZIP_FUZZ_REQUIRE(foreign.untouched(), "a decoder wrote into its output for another codec's message");

  GuardedFloats any(n, kFillA);
  const Status s = quant::decode_any(msg.data(), msg.size(), any.data(), n);
  any.check_guards("decode_any");
  if (!registered) {
    GRADZIP_FUZZ_REQUIRE(s.code() == Errc::kUnknownCodec, "decode_any answered " + s.to_string() + " for an unregistered codec id");
  }
  if (!s.ok()) GRADZIP_FUZZ_REQUIRE(any.untouched(), "decode_any wrote into its output and then refused");
}

}  // namespace gradzip::fuzz
