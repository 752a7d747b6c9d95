// Per-tensor compressor rules: which compressor spec each parameter tensor gets
// (`gradzip train --compressor-rules`). Users leave some layers uncompressed (batch norm,
// biases, the classifier) and the best systems choose per tensor (Espresso, Wang et al.,
// EuroSys'23; CGX's per-layer bits, Markov et al. 2022). Torch-free: the trainer, the
// shards and `gradzip placement` resolve the same text to the same assignment.
//
// Text: rules separated by ';' or newlines; blank items and lines starting with '#' are
// skipped; surrounding whitespace is trimmed. A rule is `lhs=spec`, split at the first
// '=' that is not part of "<=" or ">=":
//   lhs  a glob on the parameter name ('*' any run of characters, '?' one character,
//        everything else literal; the whole name must match), e.g. "*bn*", "fc.*",
//        or an element-count range: "numel<N", "numel<=N", "numel>N", "numel>=N",
//        "A<=numel<B" (integers).
//   spec a compressor spec "[memory+]codec[:k=v,...]" (quant/spec.h), stored canonical
//        (make_compressor(spec).spec(): every parameter spelled out, ef's scale resolved).
// First match wins. Example:
//   *bn*=identity; numel<1024=identity; fc.*=ef+fp16; *=ef+topk:ratio=0.01
// A run's compressor as one string (ModelSignature::compressor_spec) is either a plain
// canonical spec or "rules:" + the canonical rule list ending with a catch-all "*=spec".
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace gradzip::quant {

struct CompressorRule {
  std::string lhs;                 ///< as written (trimmed): a name glob or a numel range
  bool by_numel = false;           ///< lhs is a numel range
  std::uint64_t numel_lo = 0;      ///< by_numel: matches numel_lo <= numel < numel_hi
  std::uint64_t numel_hi = std::numeric_limits<std::uint64_t>::max();
  std::string spec;                ///< canonical compressor spec
};

/// An ordered rule list. Immutable value type; thread-safe to read.
class CompressorRules {
 public:
  /// Prefix of a rule list used as a run's compressor string.
  static constexpr const char* kPrefix = "rules:";
  static bool is_rules(const std::string& compressor) { return compressor.rfind(kPrefix, 0) == 0; }

  /// Parses rule text (with or without the "rules:" prefix). When `fallback` is not empty
  /// and no rule is the catch-all "*", "*=fallback" is appended (tensors no rule names get
  /// the run's --compressor). Throws SpecError naming the bad rule (no '=', bad range, bad spec).
  static CompressorRules parse(const std::string& text, const std::string& fallback = "");

  const std::vector<CompressorRule>& rules() const { return rules_; }
  /// The distinct canonical specs, in order of first appearance in the list.
  const std::vector<std::string>& specs() const { return specs_; }
  /// Index into specs() of the first rule matching the tensor. Throws SpecError naming the
  /// tensor when no rule matches.
  std::uint32_t spec_of(const std::string& name, std::uint64_t numel) const;
  /// "rules:lhs=spec;lhs=spec;..." (canonical specs); parse(canonical()) gives the same list.
  std::string canonical() const;

 private:
  std::vector<CompressorRule> rules_;
  std::vector<std::string> specs_;
  std::vector<std::uint32_t> rule_spec_;  ///< rule index -> spec index
};

/// Whole-string glob match: '*' matches any run (also empty, also '.'), '?' one character.
bool glob_match(const std::string& glob, const std::string& name);

/// The value of --compressor-rules as rule text: the contents of the file it names when
/// that file is readable, else the argument itself when it contains '=' (an inline list);
/// SpecError otherwise.
std::string read_rules_argument(const std::string& arg);

/// A run's compressor as one string: the canonical spec of `compressor` (with `memory`
/// overriding its memory part when not empty), or, when `rules_text` is not empty,
/// "rules:..." with that spec as the catch-all; a rule list whose rules all name one spec
/// is that plain spec (the run is then byte-identical to one without rules). Throws SpecError.
std::string run_compressor_string(const std::string& compressor, const std::string& memory,
                                  const std::string& rules_text);

}  // namespace gradzip::quant
