// Spec strings and typed parameters of codecs and memories.
//
// Grammar (whitespace not allowed):
//   compressor := [memory "+"] codec
//   codec      := name [":" key "=" value ("," key "=" value)*]
//   memory     := name [":" key "=" value ("," key "=" value)*]
// The memory/codec separator is the first '+' followed by a letter (a '+' inside a number
// such as 1e+5 is not one). Memory parameters can also come separately: --memory "dgc:momentum=0.9".
// Compressor::spec() prints this grammar with every parameter, so it parses back.
// Examples: "qsgd:bits=4,bucket=512,norm=max", "ef+topk:ratio=0.01,values=fp16".
// Every parameter has a declared kind, default and range; a bad spec raises SpecError
// naming the key, the value and what is allowed.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "quant/status.h"

namespace gradzip::quant {

enum class ParamKind { kInt, kFloat, kEnum, kBool };

/// Declaration of one parameter: name, kind, default (as text), inclusive range for
/// numbers or the allowed values of an enum, and a one-line description with units.
/// A kFloat parameter may also list words in `allowed` ("auto"): such a value resolves
/// to get_float() == NaN, and get_enum() returns the word.
struct ParamInfo {
  std::string name;
  ParamKind kind = ParamKind::kInt;
  std::string default_value;
  double min = 0.0;
  double max = 0.0;
  std::vector<std::string> allowed;
  std::string doc;
};

/// Unresolved key=value pairs as written by the user, in order.
using RawParams = std::vector<std::pair<std::string, std::string>>;

/// Resolved parameters: every declared key present, validated. Copyable value type.
class Params {
 public:
  Params() = default;
  std::int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  const std::string& get_enum(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  /// True if the user set the key explicitly (not defaulted).
  bool is_set(const std::string& key) const;
  /// "k1=v1,k2=v2" in declaration order (empty when there are no parameters).
  std::string canonical() const;

  struct Value {
    std::string key;
    std::string text;
    double number = 0.0;
    bool explicit_set = false;
  };
  std::vector<Value> values;

 private:
  const Value& find(const std::string& key) const;
};

/// Validates `raw` against `decl` for the codec/memory called `owner`: unknown keys,
/// duplicate keys, unparsable numbers, values out of range and enum values not allowed
/// all raise SpecError with a message such as
///   "qsgd: bits=9 is out of range; allowed: integer 2..8".
Params resolve_params(const std::string& owner, const std::vector<ParamInfo>& decl, const RawParams& raw);

/// Splits "name:k=v,k=v" into name and raw pairs (SpecError on malformed text).
std::pair<std::string, RawParams> split_spec(const std::string& spec);

/// "ef+qsgd:bits=2" -> {"ef", "qsgd:bits=2"}; "qsgd" -> {"none", "qsgd"};
/// "dgc:momentum=0.9+dgc:ratio=0.001" -> {"dgc:momentum=0.9", "dgc:ratio=0.001"}.
struct CompressorSpec {
  std::string memory = "none";
  std::string codec;
};
CompressorSpec parse_compressor_spec(const std::string& spec);

/// Human description of a parameter's allowed values: "integer 2..8", "one of l2|max".
std::string describe_allowed(const ParamInfo& p);

}  // namespace gradzip::quant
