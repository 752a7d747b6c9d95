#include "quant/rules.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "quant/registry.h"
#include "quant/status.h"

namespace gradzip::quant {
namespace {

std::string trim(const std::string& s) {
  std::size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

bool parse_count(const std::string& text, std::uint64_t* out) {
  if (text.empty() || text.size() > 19) return false;
  std::uint64_t v = 0;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

/// Fills the numel range of `r` from lhs forms "numel<N", "numel<=N", "numel>N",
/// "numel>=N", "A<=numel<B". Returns false when lhs is not a numel expression (a glob).
bool parse_numel_range(CompressorRule* r) {
  const std::string& s = r->lhs;
  const auto pos = s.find("numel");
  if (pos == std::string::npos || s.find_first_of("<>") == std::string::npos) return false;
  const std::string before = s.substr(0, pos), after = s.substr(pos + 5);
  const auto bad = [&] {
    return SpecError("compressor rule '" + s + "': size ranges are numel<N, numel<=N, numel>N, numel>=N or A<=numel<B");
  };
  std::uint64_t v = 0;
  if (!before.empty()) {  // "A<=numel<B"
    if (before.size() < 3 || before.compare(before.size() - 2, 2, "<=") != 0 ||
        !parse_count(before.substr(0, before.size() - 2), &r->numel_lo) || after.size() < 2 || after[0] != '<' ||
        !parse_count(after.substr(1), &r->numel_hi) || r->numel_hi <= r->numel_lo) {
      throw bad();
    }
  } else if (after.rfind("<=", 0) == 0 && parse_count(after.substr(2), &v)) {
    r->numel_hi = v + 1;
  } else if (after.rfind(">=", 0) == 0 && parse_count(after.substr(2), &v)) {
    r->numel_lo = v;
  } else if (after.rfind("<", 0) == 0 && parse_count(after.substr(1), &v)) {
    r->numel_hi = v;
  } else if (after.rfind(">", 0) == 0 && parse_count(after.substr(1), &v)) {
    r->numel_lo = v + 1;
  } else {
    throw bad();
  }
  r->by_numel = true;
  return true;
}

/// Position of the '=' separating lhs and spec: the first one not preceded by '<' or '>'.
std::size_t separator(const std::string& item) {
  for (std::size_t i = 0; i < item.size(); ++i) {
    if (item[i] == '=' && (i == 0 || (item[i - 1] != '<' && item[i - 1] != '>'))) return i;
  }
  return std::string::npos;
}

}  // namespace

bool glob_match(const std::string& glob, const std::string& name) {
  // Iterative wildcard match with one backtrack point (the last '*').
  std::size_t g = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (g < glob.size() && (glob[g] == '?' || glob[g] == name[n])) {
      ++g;
      ++n;
    } else if (g < glob.size() && glob[g] == '*') {
      star = g++;
      mark = n;
    } else if (star != std::string::npos) {
      g = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

CompressorRules CompressorRules::parse(const std::string& text, const std::string& fallback) {
  std::string body = trim(text);
  if (is_rules(body)) body = body.substr(std::string(kPrefix).size());
  std::vector<std::string> items;
  std::string line;
  std::istringstream lines(body);
  while (std::getline(lines, line)) {
    std::istringstream parts(line);
    std::string item;
    if (trim(line).rfind('#', 0) == 0) continue;
    while (std::getline(parts, item, ';')) {
      item = trim(item);
      if (!item.empty()) items.push_back(item);
    }
  }
  // The run's --compressor catches what no rule names, unless a rule already catches all.
  const bool has_catch_all =
      std::any_of(items.begin(), items.end(), [](const std::string& i) { return trim(i.substr(0, separator(i))) == "*"; });
  if (!fallback.empty() && !has_catch_all) items.push_back("*=" + fallback);
  if (items.empty()) throw SpecError("compressor rules: no rule given");
  CompressorRules out;
  for (const auto& item : items) {
    const std::size_t eq = separator(item);
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
      throw SpecError("compressor rule '" + item + "': expected pattern=spec, e.g. *bn*=identity or numel<1024=fp16");
    }
    CompressorRule r;
    r.lhs = trim(item.substr(0, eq));
    parse_numel_range(&r);
    try {
      r.spec = make_compressor(trim(item.substr(eq + 1))).spec();
    } catch (const SpecError& e) {
      throw SpecError("compressor rule '" + item + "': " + e.what());
    }
    std::uint32_t idx = 0;
    while (idx < out.specs_.size() && out.specs_[idx] != r.spec) ++idx;
    if (idx == out.specs_.size()) out.specs_.push_back(r.spec);
    out.rule_spec_.push_back(idx);
    out.rules_.push_back(std::move(r));
  }
  return out;
}

std::uint32_t CompressorRules::spec_of(const std::string& name, std::uint64_t numel) const {
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const CompressorRule& r = rules_[i];
    const bool hit = r.by_numel ? (numel >= r.numel_lo && numel < r.numel_hi) : glob_match(r.lhs, name);
    if (hit) return rule_spec_[i];
  }
  throw SpecError("compressor rules: no rule matches tensor '" + name + "' (" + std::to_string(numel) +
                  " elements); end the list with a catch-all such as *=identity");
}

std::string CompressorRules::canonical() const {
  std::string s = kPrefix;
  for (std::size_t i = 0; i < rules_.size(); ++i) s += (i ? ";" : "") + rules_[i].lhs + "=" + rules_[i].spec;
  return s;
}

std::string read_rules_argument(const std::string& arg) {
  std::ifstream f(arg);
  if (f) {  // a readable file wins (run directories of sweeps have '=' in their paths)
    std::ostringstream os;
    os << f.rdbuf();
    return os.str();
  }
  if (arg.find('=') != std::string::npos) return arg;
  throw SpecError("--compressor-rules: '" + arg + "' is neither a rule list (pattern=spec;...) nor a readable file");
}

std::string run_compressor_string(const std::string& compressor, const std::string& memory,
                                  const std::string& rules_text) {
  const std::string fallback = make_compressor(compressor, memory).spec();
  if (rules_text.empty()) return fallback;
  const CompressorRules rules = CompressorRules::parse(rules_text, fallback);
  // Every tensor gets one spec: the run is that plain spec (same handshake, same bytes).
  return rules.specs().size() == 1 ? rules.specs()[0] : rules.canonical();
}

}  // namespace gradzip::quant
