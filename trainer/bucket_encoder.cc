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
  const comm::Bucket& b = layout_.buckets[id];
  const float* g = grads + b.offset;
  const quant::SeedContext ctx{seed_, step, rank_, b.id};
  std::uint8_t* out = messages_[id].data();
  const std::size_t cap = messages_[id].size();
  quant::Status s;
  if (b.compressed) {
    // Error feedback (Seide et al. 2014; Karimireddy et al. 2019): encode g + residual and
    // keep what the receiver will not see, in one fused pass with the same bytes and state
    // as compensate -> encode -> decode -> update (quant/feedback.h).
    const quant::Memory& mem = *compressors_[b.spec].memory;
    const quant::Codec& codec = *compressors_[b.spec].codec;
    s = mem.encode_step(codec, g, b.numel, ctx, &memory_[id], out, cap, &message_bytes_[id]);
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
