#include "quant/registry.h"

#include <sstream>

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

Compressor make_compressor(const std::string& spec, const std::string& memory_override) {
  const CompressorSpec parts = parse_compressor_spec(spec);
  Compressor c;
  c.memory = make_memory(memory_override.empty() ? parts.memory : memory_override);
  c.codec = make_codec(parts.codec);
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
    describe_params(os, e->params);
  }
  os << "\nMemories (error feedback; spec: memory+codec, or --memory name:key=value,...)\n";
  for (const auto* e : memory_entries()) {
    os << "  " << e->name << "  " << e->summary << "\n";
    os << "    paper: " << e->paper << "\n";
    describe_params(os, e->params);
  }
  return os.str();
}

}  // namespace gradzip::quant
