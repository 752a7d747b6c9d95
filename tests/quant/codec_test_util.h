// Helpers of the codec property suite, the malformed-message tests and the golden
// vectors: which specs are tested, deterministic inputs, and reference kept sets for the
// size formulas of the sparse codecs.
//
// A registered codec joins the suite with its default params automatically; its size test
// checks every message against the size formula its CodecEntry documents (written in the
// codec's file). Optionally:
//   1. add non-default specs to extra_specs();
//   2. list it in stochastic_codecs() if different seeds must give different messages,
//      and in strict_value_codecs() if its decoder guarantees finite output for every
//      message it accepts (the corruption test then checks that too);
//   3. a sparse codec whose size depends on which elements it keeps
//      (SizeFormula::needs_kept) adds a second implementation of its selection rule to
//      kept_set_references() (the size test says so when it is missing).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "quant/codec.h"
#include "quant/philox.h"
#include "quant/registry.h"
#include "quant/wire.h"
#include "tests/quant/sparse_test_util.h"

namespace gradzip::quant::codec_testing {

/// The positions (ascending) a sparse codec keeps of input x (n elements) encoded with ctx.
using KeptSet = std::function<std::vector<std::uint64_t>(const Params& p, std::size_t n, const float* x,
                                                         const SeedContext& ctx)>;

/// Second implementations of the selection rules of the codecs whose message size
/// depends on the kept set (SizeFormula::needs_kept): sort-based references
/// (tests/quant/sparse_test_util.h), independent of the codecs' own selection code.
inline const std::map<std::string, KeptSet>& kept_set_references() {
  static const std::map<std::string, KeptSet> table = {
      {"topk",
       [](const Params& p, std::size_t n, const float* x, const SeedContext&) {
         const auto k = p.get_int("k") > 0 ? std::min<std::uint64_t>(p.get_int("k"), n)
                                           : count_for_ratio(n, p.get_float("ratio"));
         return testing::reference_topk(std::vector<float>(x, x + n), k);
       }},
      {"threshold",
       [](const Params& p, std::size_t n, const float* x, const SeedContext&) {
         std::vector<std::uint64_t> idx;
         for (std::size_t i = 0; i < n; ++i) {
           if (std::fabs(x[i]) >= static_cast<float>(p.get_float("tau"))) idx.push_back(i);
         }
         return idx;
       }},
      {"dgc",
       [](const Params& p, std::size_t n, const float* x, const SeedContext& ctx) {
         return testing::dgc_reference(std::vector<float>(x, x + n), p.get_float("ratio"), p.get_float("sample"),
                                       static_cast<std::uint32_t>(p.get_int("warmup_steps")), ctx);
       }},
  };
  return table;
}

/// The message size codec `e` documents (CodecEntry::size) for input x[0, n) encoded with
/// ctx and params p, the kept set taken from kept_set_references() when the formula needs
/// one. Returns false with the reason in *why when the codec documents no formula or no
/// reference kept set exists for it.
inline bool documented_size(const CodecEntry& e, const Params& p, std::size_t n, const float* x,
                            const SeedContext& ctx, std::size_t* bytes, std::string* why) {
  if (e.size.bytes == nullptr) {
    *why = "codec '" + e.name + "' documents no message-size formula: set the SizeFormula of its CodecEntry "
           "(quant/codecs/<codec>.cc) to the size its format comment states";
    return false;
  }
  std::vector<std::uint64_t> kept;
  if (e.size.needs_kept) {
    const auto ref = kept_set_references().find(e.name);
    if (ref == kept_set_references().end()) {
      *why = "codec '" + e.name + "' sizes its message by the elements it keeps: add a second implementation of "
             "its selection rule to kept_set_references() in tests/quant/codec_test_util.h";
      return false;
    }
    kept = ref->second(p, n, x, ctx);
  }
  *bytes = e.size.bytes(p, n, kept);
  return true;
}

/// Non-default specs tested in addition to each registered codec's defaults (only those
/// whose codec is registered are used).
inline const std::vector<std::string>& extra_specs() {
  static const std::vector<std::string> specs = {
      "int8:bucket=33",          "qsgd:bits=2,bucket=100,norm=max", "qsgd:bits=3,bucket=1000",
      "qsgd:bits=5,bucket=7",    "qsgd:bits=8,bucket=64,norm=max",  "terngrad:bucket=300,clip=2.5",
      "scaled-sign:bucket=1",    "onebit:bucket=77",
      "topk:k=5,values=fp16",    "topk:ratio=0.3,values=int8",     "randk:ratio=0.05,scale=true",
      "threshold:tau=0.5,values=int8", "dgc:ratio=0.01,warmup_steps=10,values=fp16",
      "zipml:bits=2,bucket=100",  "zipml:bits=1,bucket=33,refine=7", "zipml:bits=3,scope=tensor",
      "zipml:bits=4,bucket=1000,refine=17",
  };
  return specs;
}

/// Codecs whose messages depend on the seed (different seeds -> different bytes).
inline const std::set<std::string>& stochastic_codecs() {
  static const std::set<std::string> names = {"qsgd", "terngrad", "natural", "randk", "zipml"};
  return names;
}

/// Codecs whose decoders refuse every message that would decode to a non-finite value.
inline const std::set<std::string>& strict_value_codecs() {
  static const std::set<std::string> names = {"fp16",     "bf16", "int8",   "qsgd",   "terngrad",
                                              "sign",     "scaled-sign", "onebit", "natural", "zipml"};
  return names;
}

/// The dense codecs of this suite's author (exact error codes are asserted for them).
inline bool is_dense(const std::string& name) { return strict_value_codecs().count(name) != 0; }

/// Every tested spec: each registered codec's defaults, then extra_specs().
inline std::vector<std::string> all_specs() {
  std::vector<std::string> specs;
  for (const auto* e : codec_entries()) specs.push_back(e->name);
  for (const auto& s : extra_specs()) {
    if (find_codec(split_spec(s).first) != nullptr) specs.push_back(s);
  }
  return specs;
}

/// Codec name of a spec ("qsgd:bits=2" -> "qsgd").
inline std::string spec_name(const std::string& spec) { return split_spec(spec).first; }

/// Resolved params of a codec instance (from its canonical spec).
inline Params codec_params(const Codec& codec) {
  const auto [name, raw] = split_spec(codec.spec());
  return resolve_params(name, find_codec(name)->params, raw);
}

/// Deterministic test gradient of n elements: roughly Gaussian with magnitudes varying
/// over a few orders, some exact zeros and negative zeros. `salt` varies the draw.
inline std::vector<float> test_gradient(std::size_t n, std::uint32_t salt = 0) {
  std::vector<float> x(n);
  const SeedContext ctx{0x5EEDull + salt, 7, 1, 2};
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t a = random_bits(ctx, RandomStream::kSampling, 2 * i);
    const std::uint32_t b = random_bits(ctx, RandomStream::kSampling, 2 * i + 1);
    const double u1 = (static_cast<double>(a >> 8) + 0.5) / 16777216.0;
    const double u2 = static_cast<double>(b >> 8) / 16777216.0;
    const double g = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    const double mag = std::ldexp(1.0, static_cast<int>(b & 7u) - 4);  // 2^-4 .. 2^3
    x[i] = static_cast<float>(g * mag);
    if (i % 17 == 5) x[i] = 0.0f;
    if (i % 29 == 11) x[i] = -0.0f;
  }
  return x;
}

/// test_gradient(n, salt), computed once per (n, salt) and kept for the process (the
/// large sizes are reused by many test cases). Not thread-safe.
inline const std::vector<float>& cached_gradient(std::size_t n, std::uint32_t salt = 0) {
  static std::map<std::pair<std::size_t, std::uint32_t>, std::vector<float>> cache;
  auto it = cache.find({n, salt});
  if (it == cache.end()) it = cache.emplace(std::make_pair(n, salt), test_gradient(n, salt)).first;
  return it->second;
}

/// Builds a message from parts with a valid header and checksum (for crafting
/// codec-level malformed messages that get past the checksum).
inline std::vector<std::uint8_t> rebuild(CodecId codec, std::uint8_t flags, std::uint64_t numel,
                                         const std::vector<std::uint8_t>& params,
                                         const std::vector<std::uint8_t>& payload) {
  std::vector<std::uint8_t> m(kHeaderBytes + params.size() + payload.size());
  std::copy(params.begin(), params.end(), m.begin() + kHeaderBytes);
  std::copy(payload.begin(), payload.end(), m.begin() + static_cast<std::ptrdiff_t>(kHeaderBytes + params.size()));
  write_header(m.data(), codec, flags, numel, params.size(), payload.size());
  return m;
}

/// Splits a valid message into its parts (asserts it parses).
struct MessageParts {
  CodecId codec = CodecId::kIdentity;
  std::uint8_t flags = 0;
  std::uint64_t numel = 0;
  std::vector<std::uint8_t> params;
  std::vector<std::uint8_t> payload;
  std::vector<std::uint8_t> build() const { return rebuild(codec, flags, numel, params, payload); }
};
inline MessageParts split_message(const std::vector<std::uint8_t>& msg) {
  MessageView v;
  const Status st = parse_message(msg.data(), msg.size(), &v);
  if (!st.ok()) throw QuantError(st);
  MessageParts p;
  p.codec = v.codec;
  p.flags = v.flags;
  p.numel = v.numel;
  p.params.assign(v.params, v.params + v.params_bytes);
  p.payload.assign(v.payload, v.payload + v.payload_bytes);
  return p;
}

}  // namespace gradzip::quant::codec_testing
