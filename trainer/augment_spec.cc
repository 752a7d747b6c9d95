// Parsing and printing of augmentation specs (see augment_spec.h).
#include "trainer/augment_spec.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>
#include <vector>

#include "trainer/errors.h"

namespace gradzip::trainer {
namespace {

const char* const kTransforms = "none, scale, crop, flip, colour (color), pca";

/// One transform as written: its name and key=value pairs in order.
struct Item {
  std::string name;
  std::vector<std::pair<std::string, std::string>> params;
};

[[noreturn]] void fail(const std::string& what) { throw ConfigError("--augment: " + what); }

std::pair<std::string, std::string> split_param(const std::string& transform, const std::string& kv) {
  const auto eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) fail(transform + ": expected key=value, got '" + kv + "'");
  return {kv.substr(0, eq), kv.substr(eq + 1)};
}

std::vector<Item> split_items(const std::string& spec) {
  std::vector<Item> items;
  std::stringstream ss(spec);
  for (std::string part; std::getline(ss, part, ',');) {
    if (part.empty()) fail("empty item in '" + spec + "'");
    const auto colon = part.find(':');
    if (colon == std::string::npos && part.find('=') != std::string::npos) {
      if (items.empty()) fail("'" + part + "' has no transform before it (e.g. crop:pad=4)");
      items.back().params.push_back(split_param(items.back().name, part));
      continue;
    }
    Item it;
    it.name = part.substr(0, colon);
    if (it.name == "color") it.name = "colour";
    if (colon != std::string::npos) it.params.push_back(split_param(it.name, part.substr(colon + 1)));
    items.push_back(std::move(it));
  }
  if (items.empty()) fail("empty spec (use 'none' for no augmentation)");
  return items;
}

double number(const std::string& transform, const std::string& key, const std::string& text, double lo, double hi,
              bool integer) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  const bool whole = !integer || v == std::floor(v);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v) || !whole || v < lo || v > hi) {
    std::ostringstream os;
    os << transform << ": bad value '" << text << "' for " << key << ": expected " << (integer ? "an integer" : "a number")
       << " in [" << lo << ", " << hi << "]";
    fail(os.str());
  }
  return v;
}

/// Checks that every key of `it` is in `allowed` and returns the value of `key` (or
/// `fallback` when not given).
double param(const Item& it, const std::vector<std::string>& allowed, const std::string& key, double fallback,
             double lo, double hi, bool integer = false) {
  for (const auto& [k, v] : it.params) {
    bool known = false;
    for (const auto& a : allowed) known = known || a == k;
    if (!known) {
      std::string names;
      for (const auto& a : allowed) names += (names.empty() ? "" : ", ") + a;
      fail(it.name + ": unknown key '" + k + "' (allowed: " + (names.empty() ? "none" : names) + ")");
    }
  }
  double value = fallback;
  for (const auto& [k, v] : it.params) {
    if (k == key) value = number(it.name, k, v, lo, hi, integer);
  }
  return value;
}

std::string real(float v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace

AugmentOptions parse_augment_spec(const std::string& spec) {
  AugmentOptions o;
  if (spec == "none") return o;
  std::set<std::string> seen;
  for (const Item& it : split_items(spec)) {
    if (!seen.insert(it.name).second) fail("transform '" + it.name + "' given twice");
    if (it.name == "scale") {
      o.random_resized_crop = true;
      o.rrc_min_scale = static_cast<float>(param(it, {"min"}, "min", 0.35, 0.05, 1.0));
    } else if (it.name == "crop") {
      o.crop_padding = static_cast<int>(param(it, {"pad"}, "pad", 4, 1, 64, /*integer=*/true));
    } else if (it.name == "flip") {
      param(it, {}, "", 0, 0, 0);
      o.horizontal_flip = true;
    } else if (it.name == "colour") {
      o.brightness = static_cast<float>(param(it, {"brightness", "contrast"}, "brightness", 0.2, 0.0, 1.0));
      o.contrast = static_cast<float>(param(it, {"brightness", "contrast"}, "contrast", 0.2, 0.0, 1.0));
    } else if (it.name == "pca") {
      o.pca_jitter = static_cast<float>(param(it, {"sigma"}, "sigma", 0.1, 0.0, 1.0));
    } else if (it.name == "none") {
      fail("'none' cannot be combined with other transforms");
    } else {
      fail("unknown transform '" + it.name + "' (allowed: " + kTransforms + ")");
    }
  }
  return o;
}

std::string augment_spec(const AugmentOptions& o) {
  std::vector<std::string> parts;
  if (o.random_resized_crop) parts.push_back("scale:min=" + real(o.rrc_min_scale));
  if (o.crop_padding > 0) parts.push_back("crop:pad=" + std::to_string(o.crop_padding));
  if (o.horizontal_flip) parts.emplace_back("flip");
  if (o.brightness > 0 || o.contrast > 0) {
    parts.push_back("colour:brightness=" + real(o.brightness) + ",contrast=" + real(o.contrast));
  }
  if (o.pca_jitter > 0) parts.push_back("pca:sigma=" + real(o.pca_jitter));
  if (parts.empty()) return "none";
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : ",") + p;
  return s;
}

}  // namespace gradzip::trainer
