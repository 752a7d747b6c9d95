// The registry of codecs and memories: a table, not an if/else factory. Each codec file
// defines one CodecEntry (name, wire id, parameters with defaults and ranges, paper);
// the codec list quant/codecs/codec_list.inc registers the codecs, quant/registry.cc the
// memories. `gradzip compressors` prints this table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "quant/codec.h"
#include "quant/memory.h"
#include "quant/spec.h"

namespace gradzip::quant {

/// A codec's documented message size (the "Size:" of its file's format comment), in bytes:
/// kHeaderBytes + params block + payload of a message of n elements. The registry-wide
/// test suite (tests/quant/codec_property_test.cc) checks every message against it.
struct SizeFormula {
  /// `kept`: the ascending positions a sparse codec keeps, when `needs_kept`; empty and
  /// ignored otherwise. nullptr: the codec documents no formula (its size test fails).
  std::size_t (*bytes)(const Params& params, std::uint64_t n, const std::vector<std::uint64_t>& kept) = nullptr;
  /// True when the size depends on which elements are kept, not only on n and params.
  bool needs_kept = false;
};

/// Variance factor omega of an unbiased codec (Codec::unbiased()): for every input x,
/// E||C(x) - x||^2 <= omega ||x||^2. Error feedback needs a contractive compressor; an
/// unbiased one becomes contractive after scaling by 1/(1+omega) (Stich & Karimireddy 2020,
/// "The error-feedback framework", Remark 4; Richtarik et al. 2021, EF21), which
/// make_compressor applies to an "ef" memory by default (quant/memory/ef.cc).
struct VarianceBound {
  /// omega for these params; only consulted when the instance is unbiased. NaN when no
  /// bound independent of the message size exists (randk:k=..,scale=true). nullptr: the
  /// codec is never unbiased.
  double (*omega)(const Params& params) = nullptr;
  std::string formula;  ///< how omega follows from the params (`gradzip compressors`)
};

struct CodecEntry {
  std::string name;                 ///< spec name, e.g. "qsgd"
  CodecId id;                       ///< wire id (its row in quant/codecs/codec_list.inc)
  std::string summary;              ///< one line: what it sends
  std::string paper;                ///< one line: author, year, venue
  std::vector<ParamInfo> params;    ///< declared parameters
  std::unique_ptr<Codec> (*make)(const Params& params);  ///< params already validated
  SizeFormula size;                 ///< documented message size
  VarianceBound variance = {};      ///< omega of the unbiased codecs
};

struct MemoryEntry {
  std::string name;
  std::string summary;
  std::string paper;
  std::vector<ParamInfo> params;
  std::unique_ptr<Memory> (*make)(const Params& params);
};

/// Every registered codec / memory, in display order.
const std::vector<const CodecEntry*>& codec_entries();
const std::vector<const MemoryEntry*>& memory_entries();

/// Lookup; nullptr when not registered.
const CodecEntry* find_codec(const std::string& name);
const CodecEntry* find_codec(CodecId id);
const MemoryEntry* find_memory(const std::string& name);
/// Name of a codec id ("unknown" when not registered).
const char* codec_name(CodecId id);

/// Builds a codec from a spec "name[:k=v,...]" or from a name and raw pairs.
/// Throws SpecError naming the unknown codec or the bad key/value.
std::unique_ptr<Codec> make_codec(const std::string& spec);
std::unique_ptr<Codec> make_codec(const std::string& name, const RawParams& raw);
/// Builds a memory from a spec "name[:k=v,...]". Throws SpecError.
std::unique_ptr<Memory> make_memory(const std::string& spec);

/// omega of codec instance `codec` (find_codec(name)->variance at its canonical params);
/// -1 when the codec is biased, NaN when unbiased without a size-independent bound.
double variance_factor(const Codec& codec);

/// A memory and a codec built from one compressor spec ("ef+qsgd:bits=2").
/// `memory_override` (from --memory), when not empty, replaces the spec's memory part.
/// An "ef" memory whose scale is "auto" (the default) over an unbiased codec gets
/// scale = 1/(1+omega) (variance_factor; SpecError when omega is NaN, naming the fix);
/// over a biased codec scale 1. spec() prints the resolved scale, so it parses back to the
/// same compressor.
struct Compressor {
  std::unique_ptr<Memory> memory;
  std::unique_ptr<Codec> codec;
  std::string spec() const { return memory->spec() + "+" + codec->spec(); }
};
Compressor make_compressor(const std::string& spec, const std::string& memory_override = "");

/// The registry as text: one block per codec/memory with parameters, defaults,
/// allowed values and paper reference (what `gradzip compressors` prints).
std::string describe_registry();

}  // namespace gradzip::quant
