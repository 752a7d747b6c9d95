#include "quant/spec.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

namespace gradzip::quant {

namespace {

std::string format_number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

bool parse_double(const std::string& text, double* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool parse_int(const std::string& text, double* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size()) return false;
  *out = static_cast<double>(v);
  return true;
}

}  // namespace

std::string describe_allowed(const ParamInfo& p) {
  switch (p.kind) {
    case ParamKind::kInt: return "integer " + format_number(p.min) + ".." + format_number(p.max);
    case ParamKind::kFloat: {
      std::string s = "number " + format_number(p.min) + ".." + format_number(p.max);
      for (const auto& word : p.allowed) s += " or " + word;
      return s;
    }
    case ParamKind::kBool: return "one of true|false";
    case ParamKind::kEnum: {
      std::string s = "one of ";
      for (std::size_t i = 0; i < p.allowed.size(); ++i) s += (i ? "|" : "") + p.allowed[i];
      return s;
    }
  }
  return "?";
}

Params resolve_params(const std::string& owner, const std::vector<ParamInfo>& decl, const RawParams& raw) {
  for (std::size_t i = 0; i < raw.size(); ++i) {
    bool known = false;
    for (const auto& p : decl) known |= (p.name == raw[i].first);
    if (!known) {
      std::string keys;
      for (const auto& p : decl) keys += (keys.empty() ? "" : ", ") + p.name;
      throw SpecError(owner + ": unknown parameter '" + raw[i].first + "'; " +
                      (keys.empty() ? std::string("it takes no parameters") : "allowed keys: " + keys));
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (raw[j].first == raw[i].first) throw SpecError(owner + ": parameter '" + raw[i].first + "' given twice");
    }
  }
  Params out;
  for (const auto& p : decl) {
    Params::Value v;
    v.key = p.name;
    v.text = p.default_value;
    for (const auto& kv : raw) {
      if (kv.first == p.name) {
        v.text = kv.second;
        v.explicit_set = true;
      }
    }
    const auto bad = [&](const std::string& why) {
      return SpecError(owner + ": " + p.name + "=" + v.text + " " + why + "; allowed: " + describe_allowed(p));
    };
    switch (p.kind) {
      case ParamKind::kInt:
        if (!parse_int(v.text, &v.number)) throw bad("is not an integer");
        if (v.number < p.min || v.number > p.max) throw bad("is out of range");
        break;
      case ParamKind::kFloat:
        if (std::find(p.allowed.begin(), p.allowed.end(), v.text) != p.allowed.end()) {
          v.number = std::numeric_limits<double>::quiet_NaN();  // a word such as "auto"
          break;
        }
        if (!parse_double(v.text, &v.number)) throw bad("is not a finite number");
        if (v.number < p.min || v.number > p.max) throw bad("is out of range");
        break;
      case ParamKind::kBool:
        if (v.text == "true" || v.text == "1") {
          v.text = "true";
          v.number = 1;
        } else if (v.text == "false" || v.text == "0") {
          v.text = "false";
          v.number = 0;
        } else {
          throw bad("is not a boolean");
        }
        break;
      case ParamKind::kEnum: {
        bool ok = false;
        for (std::size_t k = 0; k < p.allowed.size(); ++k) {
          if (p.allowed[k] == v.text) {
            ok = true;
            v.number = static_cast<double>(k);
          }
        }
        if (!ok) throw bad("is not allowed");
        break;
      }
    }
    out.values.push_back(std::move(v));
  }
  return out;
}

const Params::Value& Params::find(const std::string& key) const {
  for (const auto& v : values) {
    if (v.key == key) return v;
  }
  throw SpecError("internal: parameter '" + key + "' was not declared");
}

std::int64_t Params::get_int(const std::string& key) const { return static_cast<std::int64_t>(find(key).number); }
double Params::get_float(const std::string& key) const { return find(key).number; }
const std::string& Params::get_enum(const std::string& key) const { return find(key).text; }
bool Params::get_bool(const std::string& key) const { return find(key).number != 0.0; }
bool Params::is_set(const std::string& key) const { return find(key).explicit_set; }

std::string Params::canonical() const {
  std::string s;
  for (const auto& v : values) s += (s.empty() ? "" : ",") + v.key + "=" + v.text;
  return s;
}

std::pair<std::string, RawParams> split_spec(const std::string& spec) {
  const auto colon = spec.find(':');
  std::string name = spec.substr(0, colon);
  if (name.empty()) throw SpecError("spec '" + spec + "': missing name before ':'");
  RawParams raw;
  if (colon == std::string::npos) return {name, raw};
  const std::string rest = spec.substr(colon + 1);
  if (rest.empty()) throw SpecError("spec '" + spec + "': nothing after ':'");
  std::size_t start = 0;
  while (start <= rest.size()) {
    const auto comma = rest.find(',', start);
    const std::string item = rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const auto eq = item.find('=');
    if (item.empty() || eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
      throw SpecError("spec '" + spec + "': expected key=value, got '" + item + "'");
    }
    raw.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return {name, raw};
}

CompressorSpec parse_compressor_spec(const std::string& spec) {
  // The memory/codec separator is the first '+' followed by a letter: names start with a
  // letter, while a '+' inside a parameter value is part of a number ("1e+5").
  CompressorSpec out;
  std::size_t plus = std::string::npos;
  for (std::size_t i = 0; i + 1 < spec.size(); ++i) {
    if (spec[i] == '+' && std::isalpha(static_cast<unsigned char>(spec[i + 1]))) {
      plus = i;
      break;
    }
  }
  if (plus != std::string::npos) {
    out.memory = spec.substr(0, plus);
    out.codec = spec.substr(plus + 1);
    if (out.memory.empty()) throw SpecError("spec '" + spec + "': empty memory name before '+'");
  } else {
    if (!spec.empty() && spec[0] == '+') throw SpecError("spec '" + spec + "': empty memory name before '+'");
    out.codec = spec;
  }
  if (out.codec.empty()) throw SpecError("spec '" + spec + "': missing codec name");
  return out;
}

}  // namespace gradzip::quant
