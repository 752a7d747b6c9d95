#include "trainer/bucket_encoder.h"

#include <string>

#include "trainer/errors.h"

namespace gradzip::trainer {

BucketEncoder::BucketEncoder(const comm::Layout& layout, const std::vector<quant::Compressor>& compressors,
                             const quant::Codec& identity, std::uint64_t seed, std::uint32_t rank)
    : layout_(layout), compressors_(compressors), identity_(identity), seed_(seed), rank_(rank) {
  memory_.resize(layout.buckets.size());
  messages_.resize(layout.buckets.size());
  message_bytes_.assign(layout.buckets.size(), 0);
  for (const auto& b : layout.buckets) {
    const quant::Codec& c = b.compressed ? *compressors[b.spec].codec : identity;
    messages_[b.id].resize(c.max_encoded_bytes(b.numel));
  }
}

void BucketEncoder::encode(std::uint32_t id, std::uint64_t step, const float* grads) {
  // Scratch of the largest bucket this thread encoded (the pool's threads keep theirs).
  thread_local std::vector<float> compensated, decoded;
  const comm::Bucket& b = layout_.buckets[id];
  const float* g = grads + b.offset;
  const quant::SeedContext ctx{seed_, step, rank_, b.id};
  std::uint8_t* out = messages_[id].data();
  const std::size_t cap = messages_[id].size();
  quant::Status s;
  if (b.compressed) {
    if (compensated.size() < b.numel) {
      compensated.resize(b.numel);
      decoded.resize(b.numel);
    }
    const quant::Memory& mem = *compressors_[b.spec].memory;
    const quant::Codec& codec = *compressors_[b.spec].codec;
    mem.compensate(g, compensated.data(), b.numel, &memory_[id]);
    s = codec.encode(compensated.data(), b.numel, ctx, out, cap, &message_bytes_[id]);
    if (s.ok() && mem.needs_decoded()) {
      s = codec.decode(out, message_bytes_[id], decoded.data(), b.numel);
    }
    if (s.ok()) mem.update(compensated.data(), decoded.data(), b.numel, &memory_[id]);
  } else {
    s = identity_.encode(g, b.numel, ctx, out, cap, &message_bytes_[id]);
  }
  if (!s.ok()) {
    throw PipelineError(PipelineError::Stage::kEncode, "worker " + std::to_string(rank_) + " step " +
                                                           std::to_string(step) + " bucket " + std::to_string(id) +
                                                           ": encode failed: " + s.to_string());
  }
}

}  // namespace gradzip::trainer
