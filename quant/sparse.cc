#include "quant/sparse.h"

#include <cmath>
#include <cstring>

namespace gradzip::quant {

namespace {
constexpr std::uint64_t kU32IndexLimit = std::uint64_t{1} << 32;
constexpr int kMaxVarintBytes = 5;  // gaps < numel <= 2^34 < 2^35 = 5 x 7 bits
constexpr std::uint16_t kFp16MaxFinite = 0x7BFFu;

inline int varint_len(std::uint64_t v) {
  int len = 1;
  while (v >= 0x80u) {
    v >>= 7;
    ++len;
  }
  return len;
}

inline std::uint8_t* put_varint(std::uint8_t* dst, std::uint64_t v) {
  while (v >= 0x80u) {
    *dst++ = static_cast<std::uint8_t>(v | 0x80u);
    v >>= 7;
  }
  *dst++ = static_cast<std::uint8_t>(v);
  return dst;
}

/// Reads one canonical varint from [*p, end). Returns kOk, kTruncated or kBadLength.
inline Errc get_varint(const std::uint8_t** p, const std::uint8_t* end, std::uint64_t* v) {
  std::uint64_t value = 0;
  const std::uint8_t* q = *p;
  for (int i = 0; i < kMaxVarintBytes; ++i) {
    if (q == end) return Errc::kTruncated;
    const std::uint8_t b = *q++;
    value |= static_cast<std::uint64_t>(b & 0x7Fu) << (7 * i);
    if ((b & 0x80u) == 0) {
      if (b == 0 && i > 0) return Errc::kBadLength;  // overlong (non-canonical) form
      *p = q;
      *v = value;
      return Errc::kOk;
    }
  }
  return Errc::kBadLength;  // more than 5 bytes
}

inline float value_at(const float* x, const std::uint64_t* idx, std::uint64_t j) {
  return idx ? x[idx[j]] : x[j];
}
}  // namespace

ParamInfo sparse_values_param() {
  return {"values", ParamKind::kEnum, "fp32", 0, 0, {"fp32", "fp16", "int8"},
          "encoding of the kept values (int8: per-message max-abs scale)"};
}

SparseValues sparse_values_from_name(const std::string& name) {
  if (name == "fp16") return SparseValues::kFp16;
  if (name == "int8") return SparseValues::kInt8;
  return SparseValues::kFp32;
}

const char* sparse_values_name(SparseValues v) {
  switch (v) {
    case SparseValues::kFp32: return "fp32";
    case SparseValues::kFp16: return "fp16";
    case SparseValues::kInt8: return "int8";
  }
  return "?";
}

Status sparse_values_from_wire(std::uint8_t byte, SparseValues* out) {
  if (byte > static_cast<std::uint8_t>(SparseValues::kInt8)) {
    return Status(Errc::kBadParams, "unknown sparse value format " + std::to_string(byte));
  }
  *out = static_cast<SparseValues>(byte);
  return Status::Ok();
}

std::uint64_t value_block_bytes(std::uint64_t count, SparseValues fmt) {
  switch (fmt) {
    case SparseValues::kFp32: return 4 * count;
    case SparseValues::kFp16: return 2 * count;
    case SparseValues::kInt8: return 4 + count;
  }
  return 0;
}

std::uint64_t varint_index_bytes(const std::uint64_t* idx, std::uint64_t count) {
  std::uint64_t bytes = 0;
  std::uint64_t next = 0;  // smallest index the next one may take
  for (std::uint64_t j = 0; j < count; ++j) {
    bytes += static_cast<std::uint64_t>(varint_len(idx[j] - next));
    next = idx[j] + 1;
  }
  return bytes;
}

std::uint64_t sparse_block_max_bytes(std::uint64_t numel, std::uint64_t count, SparseValues fmt) {
  return 8 + value_block_bytes(count, fmt) + (numel <= kU32IndexLimit ? 4 : kMaxVarintBytes) * count;
}

std::uint64_t sparse_block_bytes(std::uint64_t numel, const std::uint64_t* idx, std::uint64_t count,
                                 SparseValues fmt, bool* varint) {
  const std::uint64_t vbytes = varint_index_bytes(idx, count);
  const bool use_varint = numel > kU32IndexLimit || vbytes < 4 * count;
  if (varint) *varint = use_varint;
  return 8 + value_block_bytes(count, fmt) + (use_varint ? vbytes : 4 * count);
}

std::uint64_t write_value_block(const float* x, const std::uint64_t* idx, std::uint64_t count, SparseValues fmt,
                                std::uint8_t* dst) {
  switch (fmt) {
    case SparseValues::kFp32:
      for (std::uint64_t j = 0; j < count; ++j) store_le<float>(dst + 4 * j, value_at(x, idx, j));
      break;
    case SparseValues::kFp16:
      for (std::uint64_t j = 0; j < count; ++j) {
        std::uint16_t h = float_to_fp16(value_at(x, idx, j));
        if ((h & 0x7FFFu) == 0x7C00u) h = static_cast<std::uint16_t>((h & 0x8000u) | kFp16MaxFinite);  // saturate
        store_le<std::uint16_t>(dst + 2 * j, h);
      }
      break;
    case SparseValues::kInt8: {
      float max_abs_value = 0.0f;
      for (std::uint64_t j = 0; j < count; ++j) {
        const float a = std::fabs(value_at(x, idx, j));
        max_abs_value = a > max_abs_value ? a : max_abs_value;
      }
      const float scale = max_abs_value / 127.0f;
      store_le<float>(dst, scale);
      for (std::uint64_t j = 0; j < count; ++j) {
        float q = scale > 0.0f ? std::rint(value_at(x, idx, j) / scale) : 0.0f;
        q = q > 127.0f ? 127.0f : (q < -127.0f ? -127.0f : q);
        dst[4 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(q));
      }
      break;
    }
  }
  return value_block_bytes(count, fmt);
}

void write_sparse_block(const float* x, std::uint64_t numel, const std::uint64_t* idx, std::uint64_t count,
                        SparseValues fmt, std::uint8_t* dst, std::uint64_t* bytes, std::uint8_t* flags) {
  store_le<std::uint64_t>(dst, count);
  std::uint8_t* p = dst + 8;
  p += write_value_block(x, idx, count, fmt, p);
  const std::uint64_t vbytes = varint_index_bytes(idx, count);
  if (numel > kU32IndexLimit || vbytes < 4 * count) {
    std::uint64_t next = 0;
    for (std::uint64_t j = 0; j < count; ++j) {
      p = put_varint(p, idx[j] - next);
      next = idx[j] + 1;
    }
    *flags |= kFlagDeltaVarintIndices;
  } else {
    for (std::uint64_t j = 0; j < count; ++j) store_le<std::uint32_t>(p + 4 * j, static_cast<std::uint32_t>(idx[j]));
    p += 4 * count;
  }
  *bytes = static_cast<std::uint64_t>(p - dst);
}

Status write_kept_block(const float* x, std::uint64_t numel, const std::vector<std::uint64_t>& kept,
                        SparseValues fmt, std::size_t offset, PayloadSink* sink) {
  if (kept_nonfinite(x, kept.data(), kept.size())) return Status(Errc::kNonFiniteInput, "gradient holds NaN or Inf");
  std::uint64_t bytes = 0;
  write_sparse_block(x, numel, kept.data(), kept.size(), fmt, sink->data + offset, &bytes, &sink->flags);
  sink->bytes = offset + bytes;
  return Status::Ok();
}

Status parse_value_block(const std::uint8_t* src, std::uint64_t bytes, std::uint64_t count, SparseValues fmt,
                         ValueBlockView* view) {
  const std::uint64_t need = value_block_bytes(count, fmt);
  if (bytes < need) {
    return Status(Errc::kTruncated, "value block of " + std::to_string(count) + " " + sparse_values_name(fmt) +
                                        " values needs " + std::to_string(need) + " bytes, has " +
                                        std::to_string(bytes));
  }
  if (bytes != need) {
    return Status(Errc::kBadLength, std::to_string(bytes - need) + " bytes left over after the value block");
  }
  view->fmt = fmt;
  view->count = count;
  view->scale = 0.0f;
  view->data = src;
  switch (fmt) {
    case SparseValues::kFp32: {
      // Sum of v * 0 is NaN iff some value is NaN or Inf (see all_finite).
      float acc = 0.0f;
      for (std::uint64_t j = 0; j < count; ++j) acc += load_le<float>(src + 4 * j) * 0.0f;
      if (acc != 0.0f) return Status(Errc::kNonFiniteScale, "fp32 value block holds NaN or Inf");
      break;
    }
    case SparseValues::kFp16: {
      std::uint32_t bad = 0;
      for (std::uint64_t j = 0; j < count; ++j) bad |= (load_le<std::uint16_t>(src + 2 * j) & 0x7C00u) == 0x7C00u;
      if (bad) return Status(Errc::kNonFiniteScale, "fp16 value block holds NaN or Inf");
      break;
    }
    case SparseValues::kInt8: {
      const float scale = load_le<float>(src);
      if (!std::isfinite(scale)) return Status(Errc::kNonFiniteScale, "int8 value scale is NaN or Inf");
      if (scale < 0.0f) return Status(Errc::kBadParams, "int8 value scale is negative");
      // The encoder writes scale = max|v| / 127, so 127 * scale is finite; a larger scale
      // would decode to Inf.
      if (!std::isfinite(127.0f * scale)) return Status(Errc::kNonFiniteScale, "int8 value scale overflows");
      std::uint32_t bad = 0;
      for (std::uint64_t j = 0; j < count; ++j) bad |= src[4 + j] == 0x80u;
      if (bad) return Status(Errc::kBadParams, "int8 value -128 is outside the code range [-127, 127]");
      view->scale = scale;
      view->data = src + 4;
      break;
    }
  }
  return Status::Ok();
}

Status parse_sparse_block(const std::uint8_t* src, std::uint64_t bytes, std::uint64_t numel, std::uint8_t flags,
                          SparseValues fmt, SparseBlockView* view) {
  if ((flags & ~kFlagDeltaVarintIndices) != 0) {
    return Status(Errc::kBadParams, "unknown header flags 0x" + std::to_string(flags) + " for a sparse message");
  }
  if (bytes < 8) return Status(Errc::kTruncated, "sparse payload shorter than its 8-byte count");
  const auto count = load_le<std::uint64_t>(src);
  if (count > numel) {
    return Status(Errc::kBadLength, "sparse payload declares " + std::to_string(count) + " pairs for " +
                                        std::to_string(numel) + " elements");
  }
  const bool varint = (flags & kFlagDeltaVarintIndices) != 0;
  const std::uint64_t vbytes = value_block_bytes(count, fmt);
  const std::uint64_t rest = bytes - 8;
  const std::uint64_t min_index_bytes = varint ? count : 4 * count;
  if (rest < vbytes + min_index_bytes) {
    return Status(Errc::kTruncated, "sparse payload of " + std::to_string(bytes) + " bytes is too short for " +
                                        std::to_string(count) + " pairs");
  }
  const std::uint64_t ibytes = rest - vbytes;
  if (!varint && ibytes != 4 * count) {
    return Status(Errc::kBadLength, "u32 index block has " + std::to_string(ibytes) + " bytes for " +
                                        std::to_string(count) + " indices");
  }
  GZ_RETURN_IF_ERROR(parse_value_block(src + 8, vbytes, count, fmt, &view->values));
  const std::uint8_t* ip = src + 8 + vbytes;
  if (varint) {
    const std::uint8_t* p = ip;
    const std::uint8_t* end = ip + ibytes;
    std::uint64_t next = 0;
    for (std::uint64_t j = 0; j < count; ++j) {
      std::uint64_t gap = 0;
      const Errc e = get_varint(&p, end, &gap);
      if (e != Errc::kOk) {
        return Status(e, e == Errc::kTruncated ? "varint index " + std::to_string(j) + " runs past the payload"
                                               : "varint index " + std::to_string(j) + " is overlong");
      }
      const std::uint64_t index = next + gap;
      if (index >= numel) {
        return Status(Errc::kIndexOutOfRange, "index " + std::to_string(index) + " >= element count " +
                                                  std::to_string(numel));
      }
      next = index + 1;
    }
    if (p != end) {
      return Status(Errc::kBadLength, std::to_string(end - p) + " bytes left over after " +
                                          std::to_string(count) + " varint indices");
    }
  } else {
    std::uint64_t prev = 0;
    for (std::uint64_t j = 0; j < count; ++j) {
      const std::uint64_t index = load_le<std::uint32_t>(ip + 4 * j);
      if (index >= numel) {
        return Status(Errc::kIndexOutOfRange, "index " + std::to_string(index) + " >= element count " +
                                                  std::to_string(numel));
      }
      if (j > 0 && index <= prev) {
        return Status(Errc::kIndicesUnsorted, "index " + std::to_string(index) + " at position " +
                                                  std::to_string(j) + " does not exceed its predecessor " +
                                                  std::to_string(prev));
      }
      prev = index;
    }
  }
  view->numel = numel;
  view->count = count;
  view->varint = varint;
  view->indices = ip;
  view->index_bytes = ibytes;
  return Status::Ok();
}

namespace {
template <bool kAccumulate>
void apply_block(const SparseBlockView& v, float* out, float scale) {
  if constexpr (!kAccumulate) std::fill(out, out + v.numel, 0.0f);
  if (v.varint) {
    const std::uint8_t* p = v.indices;
    const std::uint8_t* end = v.indices + v.index_bytes;
    std::uint64_t next = 0;
    for (std::uint64_t j = 0; j < v.count; ++j) {
      std::uint64_t gap = 0;
      (void)get_varint(&p, end, &gap);  // validated by parse_sparse_block
      emit<kAccumulate>(out, next + gap, v.values.value(j), scale);
      next += gap + 1;
    }
  } else {
    for (std::uint64_t j = 0; j < v.count; ++j) {
      emit<kAccumulate>(out, load_le<std::uint32_t>(v.indices + 4 * j), v.values.value(j), scale);
    }
  }
}
}  // namespace

void apply_sparse_block(const SparseBlockView& view, float* out, float scale, bool accumulate) {
  if (accumulate) {
    apply_block<true>(view, out, scale);
  } else {
    apply_block<false>(view, out, scale);
  }
}

std::uint64_t count_for_ratio(std::uint64_t numel, double ratio) {
  if (numel == 0) return 0;
  const double k = std::ceil(ratio * static_cast<double>(numel));
  if (!(k >= 1.0)) return 1;
  if (k >= static_cast<double>(numel)) return numel;
  return static_cast<std::uint64_t>(k);
}

bool collect_abs_at_least(const float* x, std::uint64_t n, std::uint32_t tau_key, std::uint64_t cap,
                          std::vector<std::uint64_t>* out) {
  constexpr std::uint64_t kBlock = 4096;  // cap is checked once per block
  constexpr std::uint64_t kChunk = 64;
  const auto tau = static_cast<std::int32_t>(tau_key & 0x7FFFFFFFu);
  std::uint64_t c = 0;  // out's current size is used as scratch capacity (no shrink)
  for (std::uint64_t base = 0; base < n; base += kBlock) {
    if (out->size() < c + kBlock) out->resize(std::max<std::uint64_t>(2 * out->size(), c + kBlock));
    std::uint64_t* dst = out->data();
    const std::uint64_t end = std::min(n, base + kBlock);
    std::uint64_t i = base;
    for (; i + kChunk <= end; i += kChunk) {
      // Keys and tau are < 2^31, so a signed compare (SSE2 pcmpgtd) is exact; a sum
      // reduction over a fixed-size chunk vectorizes.
      std::int32_t hits = 0;
      for (std::uint64_t j = 0; j < kChunk; ++j) hits += static_cast<std::int32_t>(abs_key(x[i + j])) >= tau ? 1 : 0;
      if (hits == 0) continue;
      for (std::uint64_t j = i; j < i + kChunk; ++j) {  // branch-free compaction
        dst[c] = j;
        c += abs_key(x[j]) >= tau_key ? 1 : 0;
      }
    }
    for (; i < end; ++i) {
      dst[c] = i;
      c += abs_key(x[i]) >= tau_key ? 1 : 0;
    }
    if (c > cap) {
      out->resize(c);
      return false;
    }
  }
  out->resize(c);
  return true;
}

Status check_seed_context(const SeedContext& ctx) {
  if (ctx.bucket >= (1u << 24)) {
    return Status(Errc::kInvalidArgument, "bucket index " + std::to_string(ctx.bucket) +
                                              " exceeds the Philox counter limit 2^24");
  }
  if (ctx.step >= (std::uint64_t{1} << 32)) {
    return Status(Errc::kInvalidArgument, "step " + std::to_string(ctx.step) + " exceeds the Philox counter limit 2^32");
  }
  return Status::Ok();
}

}  // namespace gradzip::quant
