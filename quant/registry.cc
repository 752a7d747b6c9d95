#include "quant/registry.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "quant/aggregation.h"
#include "quant/codecs/codecs.h"
#include "quant/memory/memories.h"

namespace gradzip::quant {

const std::vector<const CodecEntry*>& codec_entries() {
  // One row per codec in quant/codecs/codec_list.inc; its order is the display order of
  // `gradzip compressors`.
  static const std::vector<const CodecEntry*> entries = {
#define GRADZIP_CODEC(enumerator, wire_id, stem, twin) &stem##_entry(),
#include "quant/codecs/codec_list.inc"
#undef GRADZIP_CODEC
  };
  return entries;
}

const std::vector<const MemoryEntry*>& memory_entries() {
  static const std::vector<const MemoryEntry*> entries = {
      &none_memory_entry(),
      &ef_memory_entry(),
      &dgc_memory_entry(),
      &ef21_memory_entry(),
  };
  return entries;
}

const CodecEntry* find_codec(const std::string& name) {
  for (const auto* e : codec_entries()) {
    if (e->name == name) return e;
  }
  return nullptr;
}

const CodecEntry* find_codec(CodecId id) {
  for (const auto* e : codec_entries()) {
    if (e->id == id) return e;
  }
  return nullptr;
}

const MemoryEntry* find_memory(const std::string& name) {
  for (const auto* e : memory_entries()) {
    if (e->name == name) return e;
  }
  return nullptr;
}

const char* codec_name(CodecId id) {
  const CodecEntry* e = find_codec(id);
  return e ? e->name.c_str() : "unknown";
}

namespace {
template <typename Entries>
std::string list_names(const Entries& entries) {
  std::string s;
  for (const auto* e : entries) s += (s.empty() ? "" : ", ") + e->name;
  return s;
}
}  // namespace

std::unique_ptr<Codec> make_codec(const std::string& name, const RawParams& raw) {
  const CodecEntry* e = find_codec(name);
  if (e == nullptr && find_aggregation(name) != nullptr) throw SpecError(aggregation_only_message(name));
  if (e == nullptr) throw SpecError("unknown codec '" + name + "'; available: " + list_names(codec_entries()));
  return e->make(resolve_params(name, e->params, raw));
}

std::unique_ptr<Codec> make_codec(const std::string& spec) {
  auto [name, raw] = split_spec(spec);
  return make_codec(name, raw);
}

std::unique_ptr<Memory> make_memory(const std::string& spec) {
  auto [name, raw] = split_spec(spec);
  const MemoryEntry* e = find_memory(name);
  if (e == nullptr) throw SpecError("unknown memory '" + name + "'; available: " + list_names(memory_entries()));
  return e->make(resolve_params(name, e->params, raw));
}

double variance_factor(const Codec& codec) {
  if (!codec.unbiased()) return -1.0;
  const auto [name, raw] = split_spec(codec.spec());
  const CodecEntry* e = find_codec(name);
  if (e == nullptr || e->variance.omega == nullptr) return std::numeric_limits<double>::quiet_NaN();
  return e->variance.omega(resolve_params(name, e->params, raw));
}

namespace {
/// The "ef" memory spec with its scale resolved against `codec` (see make_compressor).
std::string resolve_ef_scale(const std::string& memory_spec, const Codec& codec) {
  auto [name, raw] = split_spec(memory_spec);
  if (name != "ef") return memory_spec;
  const Params p = resolve_params(name, find_memory(name)->params, raw);
  if (!std::isnan(p.get_float("scale"))) return memory_spec;  // a number: the user's choice
  const double omega = variance_factor(codec);
  if (omega < 0.0) return "ef";  // biased codec: unscaled
  if (std::isnan(omega)) {
    throw SpecError("ef over " + codec.spec() +
                    ": the codec is unbiased but its variance factor depends on the tensor size, so EF cannot "
                    "pick the scale 1/(1+omega) that makes it contractive; use randk:ratio=..., or set "
                    "ef:scale=<s> explicitly");
  }
  return "ef:scale=" + ef_scale_text(static_cast<float>(1.0 / (1.0 + omega)));
}
}  // namespace

Compressor make_compressor(const std::string& spec, const std::string& memory_override) {
  const CompressorSpec parts = parse_compressor_spec(spec);
  Compressor c;
  c.codec = make_codec(parts.codec);
  c.memory = make_memory(resolve_ef_scale(memory_override.empty() ? parts.memory : memory_override, *c.codec));
  return c;
}

namespace {
void describe_params(std::ostringstream& os, const std::vector<ParamInfo>& params) {
  for (const auto& p : params) {
    os << "    " << p.name << " (default " << p.default_value << "; " << describe_allowed(p) << ")  " << p.doc
       << "\n";
  }
}
}  // namespace

std::string describe_registry() {
  std::ostringstream os;
  os << "Codecs (spec: name:key=value,...; wire id in brackets)\n";
  for (const auto* e : codec_entries()) {
    os << "  " << e->name << " [" << static_cast<int>(e->id) << "]  " << e->summary << "\n";
    os << "    paper: " << e->paper << "\n";
    if (e->variance.omega != nullptr) {
      const double omega = variance_factor(*e->make(resolve_params(e->name, e->params, {})));
      os << "    omega (unbiased; E||C(x)-x||^2 <= omega ||x||^2): " << e->variance.formula << "; default params: "
         << (omega < 0.0 ? std::string("biased") : std::to_string(omega)) << "\n";
    }
    describe_params(os, e->params);
  }
  os << "\nMemories (error feedback; spec: memory+codec, or --memory name:key=value,...)\n";
  for (const auto* e : memory_entries()) {
    os << "  " << e->name << "  " << e->summary << "\n";
    os << "    paper: " << e->paper << "\n";
    describe_params(os, e->params);
  }
  os << "\nAggregation-only (a collective aggregation drives them; not per-worker messages, not on the "
        "parameter server)\n";
  for (const auto* e : aggregation_entries()) {
    os << "  " << e->name << "  " << e->summary << "\n";
    os << "    paper: " << e->paper << "\n";
    os << "    bytes: " << e->bytes << "\n";
    describe_params(os, e->params);
  }
  return os.str();
}

}  // namespace gradzip::quant
