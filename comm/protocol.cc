#include "comm/protocol.h"

#include <nlohmann/json.hpp>

#include <cstdint>

#include "quant/wire.h"

namespace gradzip::comm {

using quant::load_le;
using quant::store_le;

const char* proto_err_name(ProtoErr e) {
  switch (e) {
    case ProtoErr::kMalformed: return "malformed";
    case ProtoErr::kSignatureMismatch: return "signature_mismatch";
    case ProtoErr::kUnknownWorker: return "unknown_worker";
    case ProtoErr::kNotOwned: return "not_owned";
    case ProtoErr::kWrongStep: return "wrong_step";
    case ProtoErr::kBadMessage: return "bad_message";
    case ProtoErr::kCodecMismatch: return "codec_mismatch";
    case ProtoErr::kSizeMismatch: return "size_mismatch";
    case ProtoErr::kBusy: return "busy";
    case ProtoErr::kUninitialized: return "uninitialized";
    case ProtoErr::kNotBound: return "not_bound";
    case ProtoErr::kRankTaken: return "rank_taken";
    case ProtoErr::kDeclaredDead: return "declared_dead";
    case ProtoErr::kNotReducing: return "not_reducing";
  }
  return "unknown";
}

void write_envelope(const Envelope& e, std::uint8_t* dst) {
  store_le<std::uint32_t>(dst + 0, kProtocolMagic);
  store_le<std::uint16_t>(dst + 4, kProtocolVersion);
  dst[6] = static_cast<std::uint8_t>(e.type);
  dst[7] = e.flags;
  store_le<std::uint32_t>(dst + 8, e.worker);
  store_le<std::uint32_t>(dst + 12, e.bucket);
  store_le<std::uint64_t>(dst + 16, e.step);
  store_le<std::uint64_t>(dst + 24, e.seq);
  store_le<std::uint64_t>(dst + 32, e.aux);
}

bool read_envelope(const std::uint8_t* src, std::size_t bytes, Envelope* e, std::string* why) {
  if (bytes != kEnvelopeBytes) {
    *why = "envelope is " + std::to_string(bytes) + " bytes, expected " + std::to_string(kEnvelopeBytes);
    return false;
  }
  if (load_le<std::uint32_t>(src) != kProtocolMagic) {
    *why = "bad envelope magic";
    return false;
  }
  if (load_le<std::uint16_t>(src + 4) != kProtocolVersion) {
    *why = "protocol version " + std::to_string(load_le<std::uint16_t>(src + 4)) + " not supported";
    return false;
  }
  const std::uint8_t type = src[6];
  const std::uint8_t base = type == 0xFF ? type : static_cast<std::uint8_t>(type & ~kReplyBit);
  if (base != 0xFF && (base < 1 || base > 8)) {
    *why = "unknown message type " + std::to_string(type);
    return false;
  }
  e->type = static_cast<MsgType>(type);
  e->flags = src[7];
  e->worker = load_le<std::uint32_t>(src + 8);
  e->bucket = load_le<std::uint32_t>(src + 12);
  e->step = load_le<std::uint64_t>(src + 16);
  e->seq = load_le<std::uint64_t>(src + 24);
  e->aux = load_le<std::uint64_t>(src + 32);
  return true;
}

std::string signature_to_json(const ModelSignature& s) {
  nlohmann::json j;
  j["compressor"] = s.compressor_spec;
  j["downlink"] = s.downlink_spec;
  j["placement"] = s.placement;
  auto& ts = j["tensors"] = nlohmann::json::array();
  for (const auto& t : s.tensors) ts.push_back({{"name", t.name}, {"shape", t.shape}, {"numel", t.numel}});
  return j.dump();
}

bool signature_from_json(const std::uint8_t* text, std::size_t bytes, ModelSignature* s, std::string* why) {
  const auto j = nlohmann::json::parse(text, text + bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    *why = "signature is not a JSON object";
    return false;
  }
  const auto refuse = [why](const std::string& problem) {
    *why = "signature JSON: " + problem;
    return false;
  };
  try {
    ModelSignature out;
    out.compressor_spec = j.at("compressor").get<std::string>();
    out.downlink_spec = j.at("downlink").get<std::string>();
    out.placement = j.at("placement").get<std::string>();
    const auto& tensors = j.at("tensors");
    if (!tensors.is_array()) return refuse("\"tensors\" is not an array");
    for (const auto& t : tensors) {
      TensorInfo ti;
      ti.name = t.at("name").get<std::string>();
      // Sizes must be JSON integers: nlohmann converts a float such as 1e46 to an integer
      // with a plain cast (undefined behaviour out of range), and a negative integer to a
      // huge unsigned one.
      const auto& shape = t.at("shape");
      if (!shape.is_array()) return refuse("tensor '" + ti.name + "': \"shape\" is not an array");
      for (const auto& dim : shape) {
        if (!dim.is_number_unsigned() || dim.get<std::uint64_t>() > std::uint64_t{INT64_MAX}) {
          return refuse("tensor '" + ti.name + "': shape entry " + dim.dump() + " is not a size");
        }
        ti.shape.push_back(dim.get<std::int64_t>());
      }
      const auto& numel = t.at("numel");
      if (!numel.is_number_unsigned()) return refuse("tensor '" + ti.name + "': numel " + numel.dump() + " is not a count");
      ti.numel = numel.get<std::uint64_t>();
      out.tensors.push_back(std::move(ti));
    }
    *s = std::move(out);
    return true;
  } catch (const nlohmann::json::exception& e) {
    *why = std::string("signature JSON: ") + e.what();
    return false;
  }
}

}  // namespace gradzip::comm
