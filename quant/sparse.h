// Shared machinery of the sparse codecs (topk, randk, threshold, dgc): the sparse block
// on the wire, its strict validation, and an exact O(n) top-k selection by integer key.
//
// ---------------------------------------------------------------------------------
// Value block (all sparse codecs; randk sends only this block)
// ---------------------------------------------------------------------------------
// The value format is a codec parameter (SparseValues, one byte in the codec's params):
//   fp32 (0): count x IEEE binary32, little-endian.
//   fp16 (1): count x IEEE binary16 (quant/half.h float_to_fp16, round to nearest even).
//             A value whose magnitude would round to Inf (|v| >= 65520) saturates to
//             +-65504 (largest finite fp16) so that a message never carries Inf.
//   int8 (2): f32 scale, then count x int8 q. scale = M / 127 (one IEEE fp32 division)
//             where M = max |v| over the block's values (M = 0 gives scale = 0, q = 0);
//             q = rint(v / scale) (IEEE division, round half to even), clamped to
//             [-127, 127]; decoded value = q * scale (one fp32 multiply). q = -128 is
//             never produced and is refused on decode. Deterministic rounding: int8
//             values are not unbiased; an error-feedback memory keeps the rounding error.
// Values appear in ascending index order.
//
// ---------------------------------------------------------------------------------
// Sparse block (topk, threshold, dgc)
// ---------------------------------------------------------------------------------
//   off  size             field
//    0   8                count: number of (index, value) pairs, u64, count <= numel
//    8   V                value block (above): V = count*4 | count*2 | 4 + count
//   8+V  I                index block, one of two encodings, flagged in the header:
//     - header flag clear: count x u32 little-endian indices (I = 4 count);
//       only when numel <= 2^32.
//     - header flag kFlagDeltaVarintIndices: count unsigned LEB128 varints of the
//       gaps g_0 = idx_0, g_j = idx_j - idx_{j-1} - 1 (j >= 1). Strictly increasing
//       indices make every gap >= 0, so consecutive indices cost one 0x00 byte.
//       LEB128: 7 bits per byte, least-significant group first, bit 7 set on every
//       byte except the last. Canonical only: at most 5 bytes (numel <= 2^34 < 2^35)
//       and a multi-byte varint may not end in 0x00. The block ends exactly after the
//       count-th varint.
//   The encoder picks varint iff its byte length is strictly smaller than 4*count, or
//   numel > 2^32 (u32 cannot address the elements). Ties go to u32 (faster to decode).
//   Indices are strictly increasing and < numel in both encodings.
// Decoders validate everything (count vs numel and vs the codec's expectation, payload
// length, index order and range, varint form, int8 scale finite and >= 0, values finite)
// before they write the output buffer.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "quant/codec.h"
#include "quant/half.h"
#include "quant/spec.h"
#include "quant/status.h"
#include "quant/wire.h"

namespace gradzip::quant {

/// Value format of a sparse payload (wire byte in the codec params; stable numbers).
enum class SparseValues : std::uint8_t { kFp32 = 0, kFp16 = 1, kInt8 = 2 };

/// Spec-string declaration of the `values` parameter ("fp32|fp16|int8").
ParamInfo sparse_values_param();
/// Parses the resolved enum text ("fp32", ...). Precondition: validated by the registry.
SparseValues sparse_values_from_name(const std::string& name);
/// "fp32" | "fp16" | "int8".
const char* sparse_values_name(SparseValues v);
/// Checks a value-format byte read from a message (kBadParams if unknown).
Status sparse_values_from_wire(std::uint8_t byte, SparseValues* out);

/// Bytes of a value block of `count` values: 4c, 2c or 4 + c.
std::uint64_t value_block_bytes(std::uint64_t count, SparseValues fmt);
/// Bytes of a u32 index block, or of the delta-varint block of ascending indices idx[0, count).
std::uint64_t varint_index_bytes(const std::uint64_t* idx, std::uint64_t count);
/// Upper bound of a sparse block (count field + values + indices) for `count` pairs out
/// of `numel` elements: 8 + value_block_bytes + (numel <= 2^32 ? 4 : 5) * count.
std::uint64_t sparse_block_max_bytes(std::uint64_t numel, std::uint64_t count, SparseValues fmt);
/// Exact size of the sparse block the encoder writes for these indices (for size tests).
std::uint64_t sparse_block_bytes(std::uint64_t numel, const std::uint64_t* idx, std::uint64_t count,
                                 SparseValues fmt, bool* varint);

/// Writes the value block of values x[idx[j]] * 1 for j < count (idx may be nullptr:
/// then x[0, count) are the values). Returns the bytes written (value_block_bytes).
std::uint64_t write_value_block(const float* x, const std::uint64_t* idx, std::uint64_t count, SparseValues fmt,
                                std::uint8_t* dst);

/// Writes a sparse block of the pairs (idx[j], x[idx[j]]), idx strictly increasing and
/// < numel, at dst (capacity >= sparse_block_max_bytes). Sets *bytes and ORs
/// kFlagDeltaVarintIndices into *flags when it chose varint indices.
void write_sparse_block(const float* x, std::uint64_t numel, const std::uint64_t* idx, std::uint64_t count,
                        SparseValues fmt, std::uint8_t* dst, std::uint64_t* bytes, std::uint8_t* flags);

/// Encoder tail of the selection codecs (topk, threshold, dgc): refuses the gradient
/// with kNonFiniteInput if a kept element x[kept[j]] is NaN or Inf (kept_nonfinite: a
/// selection by largest |x| detects non-finite input anywhere this way), else writes the
/// sparse block of the kept pairs at sink->data + offset (write_sparse_block: kept
/// strictly increasing and < numel, capacity >= offset + sparse_block_max_bytes), sets
/// sink->bytes = offset + block bytes and ORs the varint flag into sink->flags. The
/// first `offset` bytes (a codec's own fields before the block) are not touched.
Status write_kept_block(const float* x, std::uint64_t numel, const std::vector<std::uint64_t>& kept,
                        SparseValues fmt, std::size_t offset, PayloadSink* sink);

/// A validated value block (points into the message).
struct ValueBlockView {
  SparseValues fmt = SparseValues::kFp32;
  std::uint64_t count = 0;
  float scale = 0.0f;                  ///< int8 only
  const std::uint8_t* data = nullptr;  ///< first value
  /// Decoded value j (j < count).
  float value(std::uint64_t j) const {
    switch (fmt) {
      case SparseValues::kFp32: return load_le<float>(data + 4 * j);
      case SparseValues::kFp16: return fp16_to_float(load_le<std::uint16_t>(data + 2 * j));
      case SparseValues::kInt8: return static_cast<float>(static_cast<std::int8_t>(data[j])) * scale;
    }
    return 0.0f;
  }
};

/// Validates a value block of exactly `count` values occupying exactly `bytes` bytes at
/// `src`: length (kBadLength / kTruncated), int8 scale finite, >= 0 and with 127 * scale
/// finite (kNonFiniteScale, kBadParams), q != -128 (kBadParams), fp32/fp16 values finite
/// (kNonFiniteScale). Every accepted block decodes to finite values.
Status parse_value_block(const std::uint8_t* src, std::uint64_t bytes, std::uint64_t count, SparseValues fmt,
                         ValueBlockView* view);

/// A validated sparse block (points into the message).
struct SparseBlockView {
  std::uint64_t numel = 0;
  std::uint64_t count = 0;
  bool varint = false;
  ValueBlockView values;
  const std::uint8_t* indices = nullptr;
  std::uint64_t index_bytes = 0;
};

/// Validates a sparse block that fills `bytes` bytes at `src` exactly, for a message of
/// `numel` elements with header `flags` (only kFlagDeltaVarintIndices may be set:
/// kBadParams otherwise). Checks count <= numel (kBadLength), lengths (kTruncated /
/// kBadLength), every index (kIndicesUnsorted, kIndexOutOfRange), varint form
/// (kTruncated when it runs past the block, kBadLength when overlong or when bytes are
/// left over), the value block (parse_value_block). Reads nothing outside the block.
Status parse_sparse_block(const std::uint8_t* src, std::uint64_t bytes, std::uint64_t numel, std::uint8_t flags,
                          SparseValues fmt, SparseBlockView* view);

/// Applies a validated block: out[idx_j] (=|+=) scale * value_j. With accumulate ==
/// false every other element of out[0, numel) is set to 0 first.
void apply_sparse_block(const SparseBlockView& view, float* out, float scale, bool accumulate);

/// Element count for a density: 0 if numel == 0, else clamp(ceil(ratio * numel), 1,
/// numel) computed in IEEE double (ratio and numel converted to double, one multiply,
/// std::ceil). The CUDA twins compute k on the host with the same expression.
std::uint64_t count_for_ratio(std::uint64_t numel, double ratio);

/// |x| as an order-preserving integer key: the IEEE bits of x with the sign cleared.
/// For finite x, |a| < |b| iff abs_key(a) < abs_key(b); +0 and -0 share key 0.
inline std::uint32_t abs_key(float x) { return float_bits(x) & 0x7FFFFFFFu; }

/// True if some kept element x[idx[j]] is NaN or Inf. A selection by largest |x| (topk,
/// threshold, dgc) always keeps the largest abs_key, and NaN/Inf have the largest keys
/// (>= 0x7F800000), so checking the kept elements detects non-finite input anywhere in
/// x without another pass over it (requires count >= 1 whenever n >= 1).
inline bool kept_nonfinite(const float* x, const std::uint64_t* idx, std::uint64_t count) {
  std::uint32_t bad = 0;
  for (std::uint64_t j = 0; j < count; ++j) bad |= abs_key(x[idx[j]]) >= 0x7F800000u ? 1u : 0u;
  return bad != 0;
}

/// Scan used by threshold and dgc: out = { i : abs_key(x_i) >= tau_key } in ascending
/// order. Returns false (out then holds a partial list) as soon as more than `cap`
/// indices were found; cap = UINT64_MAX never stops. Chunks of 64 elements without a hit
/// are skipped after one vectorized compare, so a sparse result costs about one read of x.
bool collect_abs_at_least(const float* x, std::uint64_t n, std::uint32_t tau_key, std::uint64_t cap,
                          std::vector<std::uint64_t>* out);

/// Exact top-k by a 32-bit key: the positions p in [0, n) of the k largest key(p),
/// ties broken in favour of the smaller position; written to *out in ascending order.
/// k >= n returns every position. Algorithm (O(n), radix select with 11/11/10-bit digits
/// and 2048-bin histograms on the stack):
///   1. histogram of key >> 21 over all p; walking the bins down from the top finds the
///      bin B holding the k-th largest key and `above` = #keys in higher bins;
///   2. L = positions with key >> 21 >= B (ascending; usually a few k);
///   3. two more digit histograms over L's members that share the prefix found so far
///      ((key >> 10) & 0x7FF, then key & 0x3FF) pin the exact k-th largest key T and
///      take = k - #keys > T;
///   4. out = members of L with key > T, plus the first `take` (smallest positions) with
///      key == T.
/// The result is defined by the selection rule alone, so any exact algorithm (a GPU
/// radix select) yields the same set. Below kSmallSelect positions a sort is used.
template <typename KeyFn>
void select_top_keys(std::uint64_t n, std::uint64_t k, KeyFn key, std::vector<std::uint64_t>* out) {
  out->clear();
  if (k == 0 || n == 0) return;
  if (k >= n) {
    out->resize(n);
    for (std::uint64_t p = 0; p < n; ++p) (*out)[p] = p;
    return;
  }
  constexpr std::uint64_t kSmallSelect = 4096;
  if (n < kSmallSelect) {
    // (key descending, position ascending) order, take k, return positions ascending.
    std::vector<std::pair<std::uint32_t, std::uint64_t>> items(n);
    for (std::uint64_t p = 0; p < n; ++p) items[p] = {key(p), p};
    const auto before = [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    };
    std::nth_element(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(k - 1), items.end(), before);
    out->resize(k);
    const auto kth = items[k - 1];
    std::uint64_t j = 0;
    for (std::uint64_t p = 0; p < n; ++p) {
      const std::pair<std::uint32_t, std::uint64_t> it{key(p), p};
      if (!before(kth, it)) (*out)[j++] = p;  // it == kth or it before kth
    }
    return;
  }
  std::uint64_t hist[2048];
  std::uint64_t above = 0;
  // Walks a histogram down from its top bin; returns the bin holding the k-th largest.
  const auto find_bin = [&hist, &above, k](std::uint32_t top) {
    std::uint32_t bin = top;
    for (;; --bin) {
      if (above + hist[bin] >= k) return bin;
      above += hist[bin];
    }
  };
  {
    // Four interleaved sub-histograms: neighbouring elements usually share a bin, and
    // one counter would serialise the increments through store-to-load forwarding.
    std::vector<std::uint64_t> sub(4 * 2048, 0);
    std::uint64_t p = 0;
    for (; p + 4 <= n; p += 4) {
      ++sub[key(p) >> 21];
      ++sub[2048 + (key(p + 1) >> 21)];
      ++sub[4096 + (key(p + 2) >> 21)];
      ++sub[6144 + (key(p + 3) >> 21)];
    }
    for (; p < n; ++p) ++sub[key(p) >> 21];
    for (std::uint32_t b = 0; b < 2048; ++b) hist[b] = sub[b] + sub[2048 + b] + sub[4096 + b] + sub[6144 + b];
  }
  std::uint32_t prefix = find_bin(2047);  // key >> 21 of the k-th largest
  std::vector<std::uint64_t> list;
  list.reserve(above + hist[prefix]);
  for (std::uint64_t p = 0; p < n; ++p) {
    if ((key(p) >> 21) >= prefix) list.push_back(p);
  }
  // Two more digits, over the members of L that share the prefix.
  const struct {
    int shift;            // the prefix so far is key >> (shift + bits)
    int bits;             // digit width
  } digits[] = {{10, 11}, {0, 10}};
  for (const auto& d : digits) {
    const std::uint32_t mask = (1u << d.bits) - 1u;
    std::fill(hist, hist + 2048, std::uint64_t{0});
    for (const std::uint64_t p : list) {
      const std::uint32_t kk = key(p);
      if ((kk >> (d.shift + d.bits)) == prefix) ++hist[(kk >> d.shift) & mask];
    }
    prefix = (prefix << d.bits) | find_bin(mask);
  }
  const std::uint32_t threshold = prefix;  // the exact k-th largest key
  std::uint64_t take = k - above;
  out->reserve(k);
  for (const std::uint64_t p : list) {
    const std::uint32_t kk = key(p);
    if (kk > threshold) {
      out->push_back(p);
    } else if (kk == threshold && take > 0) {
      out->push_back(p);
      --take;
    }
  }
}

/// Codec-side check of the context fields the Philox counter layout can hold
/// (bucket < 2^24, step < 2^32): kInvalidArgument otherwise.
Status check_seed_context(const SeedContext& ctx);

}  // namespace gradzip::quant
