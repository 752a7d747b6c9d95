#include "experiments/auto_choice.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "quant/registry.h"
#include "quant/rules.h"

namespace gradzip::experiments {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kSmallProbe = 4096;
constexpr std::size_t kLargeProbe = 262144;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// Deterministic N(0, 1)-like probe data (sum of uniforms; the codecs' costs do not depend
/// on the exact distribution).
std::vector<float> probe(std::size_t n) {
  std::vector<float> x(n);
  std::uint64_t s = 0x9E3779B97F4A7C15ull;
  for (auto& v : x) {
    float acc = 0.0f;
    for (int k = 0; k < 4; ++k) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      acc += static_cast<float>(s >> 40) * 0x1p-24f - 0.5f;
    }
    v = acc * 1.7320508f;
  }
  return x;
}

struct Probe {
  double worker_s = 0, shard_s = 0;
  std::size_t bytes = 0;
};

/// Best-of-`reps` times of one worker step and one shard decode_add at size n.
Probe time_at(const quant::Compressor& c, const std::vector<float>& g, int reps) {
  const std::size_t n = g.size();
  quant::MemoryState state;
  std::vector<float> acc(n, 0.0f);
  std::vector<std::uint8_t> msg(c.codec->max_encoded_bytes(n));
  Probe p;
  p.worker_s = p.shard_s = 1e30;
  for (int r = 0; r < reps; ++r) {
    const quant::SeedContext ctx{7, static_cast<std::uint64_t>(r), 0, 0};
    auto t0 = Clock::now();
    // The worker's step as the trainer runs it: the fused error-feedback pass.
    quant::Status st = c.memory->encode_step(*c.codec, g.data(), n, ctx, &state, msg.data(), msg.size(), &p.bytes);
    p.worker_s = std::min(p.worker_s, seconds_since(t0));
    t0 = Clock::now();
    if (st.ok()) st = c.codec->decode_add(msg.data(), p.bytes, acc.data(), n, 0.5f);
    p.shard_s = std::min(p.shard_s, seconds_since(t0));
    if (!st.ok()) throw std::invalid_argument("auto: candidate " + c.spec() + " failed on probe data: " + st.to_string());
  }
  return p;
}

/// Message bytes of `spec` for n elements: the codec's documented formula, or for codecs
/// whose size depends on the kept set an affine fit through the two probe sizes.
double message_bytes(const std::string& spec, std::uint64_t n, const std::vector<std::pair<double, double>>& probes) {
  const auto [name, raw] = quant::split_spec(quant::parse_compressor_spec(spec).codec);
  const quant::CodecEntry* e = quant::find_codec(name);
  if (e != nullptr && e->size.bytes != nullptr && !e->size.needs_kept) {
    return static_cast<double>(e->size.bytes(quant::resolve_params(name, e->params, raw), n, {}));
  }
  const auto [n1, b1] = probes[0];
  const auto [n2, b2] = probes[1];
  return std::max(static_cast<double>(quant::kHeaderBytes), b1 + (b2 - b1) / (n2 - n1) * (static_cast<double>(n) - n1));
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);) out.push_back(item);
  return out;
}

}  // namespace

bool is_auto_spec(const std::string& compressor) { return compressor == "auto" || compressor.rfind("auto:", 0) == 0; }

AutoSpec parse_auto_spec(const std::string& compressor) {
  AutoSpec a;
  if (!is_auto_spec(compressor)) throw std::invalid_argument("'" + compressor + "' is not auto:...");
  if (compressor.size() <= 5) return a;
  for (const auto& kv : split(compressor.substr(5), ',')) {
    const auto eq = kv.find('=');
    const std::string key = kv.substr(0, eq), value = eq == std::string::npos ? "" : kv.substr(eq + 1);
    const auto number = [&](double lo, double hi) {
      char* end = nullptr;
      const double v = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(v >= lo && v <= hi)) {
        throw std::invalid_argument("auto: " + key + "=" + value + " is not a number in [" + std::to_string(lo) + ", " +
                                    std::to_string(hi) + "]");
      }
      return v;
    };
    if (key == "link") {
      parse_link(value);  // throws LinkModelError (an invalid_argument) naming the link
      a.link = value;
    } else if (key == "min_bits") {
      a.min_bits = number(0.0, 32.0);
    } else if (key == "margin") {
      a.margin = number(0.0, 1.0);
    } else if (key == "candidates") {
      a.candidates = split(value, '|');
      if (a.candidates.empty()) throw std::invalid_argument("auto: candidates= is empty");
    } else {
      throw std::invalid_argument("auto: unknown key '" + key + "'; allowed: link, min_bits, margin, candidates "
                                  "(e.g. auto:link=eth1g,min_bits=4,candidates=identity|fp16|ef+qsgd:bits=4)");
    }
  }
  return a;
}

std::vector<CodecCost> measure_codec_costs(const std::vector<std::string>& candidates) {
  const std::vector<float> small = probe(kSmallProbe), large = probe(kLargeProbe);
  std::vector<CodecCost> costs;
  for (const auto& spec : candidates) {
    const quant::Compressor c = quant::make_compressor(spec);
    time_at(c, small, 1);  // untimed: first touch of buffers and code
    const Probe a = time_at(c, small, 8), b = time_at(c, large, 3);
    const double dn = static_cast<double>(kLargeProbe - kSmallProbe);
    CodecCost cost;
    cost.spec = c.spec();
    cost.worker_per_element_s = std::max(0.0, (b.worker_s - a.worker_s) / dn);
    cost.worker_fixed_s = std::max(0.0, a.worker_s - cost.worker_per_element_s * kSmallProbe);
    cost.shard_per_element_s = std::max(0.0, (b.shard_s - a.shard_s) / dn);
    cost.shard_fixed_s = std::max(0.0, a.shard_s - cost.shard_per_element_s * kSmallProbe);
    costs.push_back(cost);
  }
  return costs;
}

AutoPlan choose_compressors(const std::vector<comm::TensorInfo>& tensors, const AutoSpec& spec, std::uint32_t workers,
                            std::uint32_t shards, std::vector<CodecCost> costs) {
  const auto t0 = Clock::now();
  const LinkProfile link = parse_link(spec.link);
  std::vector<std::string> canon;
  for (const auto& c : spec.candidates) canon.push_back(quant::make_compressor(c).spec());
  const std::string identity = quant::make_compressor("identity").spec();
  if (std::find(canon.begin(), canon.end(), identity) == canon.end()) canon.push_back(identity);
  if (costs.empty()) costs = measure_codec_costs(canon);
  // Message sizes at the probe sizes (for the codecs without a closed formula).
  std::vector<std::vector<std::pair<double, double>>> probe_bytes;
  for (const auto& c : canon) {
    const auto it = std::find_if(costs.begin(), costs.end(), [&](const CodecCost& k) { return k.spec == c; });
    if (it == costs.end()) throw std::invalid_argument("auto: no measured cost for candidate " + c);
    const quant::Compressor comp = quant::make_compressor(c);
    std::vector<std::pair<double, double>> pb;
    for (std::size_t n : {kSmallProbe, kLargeProbe}) {
      const std::vector<float> x = probe(n);
      pb.emplace_back(static_cast<double>(n), static_cast<double>(comp.codec->encode(x.data(), n, {}).size()));
    }
    probe_bytes.push_back(pb);
  }
  const double n_w = std::max<std::uint32_t>(1, workers), n_s = std::max<std::uint32_t>(1, shards);
  const double incast = std::max(n_w / n_s, 1.0);
  AutoPlan plan;
  std::ostringstream rules;
  for (const auto& t : tensors) {
    if (t.name.empty() || t.name.find_first_of("*?;=\n#") != std::string::npos) {
      throw std::invalid_argument("auto: tensor name '" + t.name + "' cannot be an exact rule pattern");
    }
    const double n = static_cast<double>(t.numel);
    struct Option {
      std::size_t i;
      double time, bits;
    };
    std::vector<Option> options;
    for (std::size_t i = 0; i < canon.size(); ++i) {
      const CodecCost& k = *std::find_if(costs.begin(), costs.end(), [&](const CodecCost& c) { return c.spec == canon[i]; });
      const double bytes = message_bytes(canon[i], t.numel, probe_bytes[i]);
      const double time = k.worker_fixed_s + k.worker_per_element_s * n + incast * bytes * link.frame_overhead_factor /
                          link.bandwidth_bytes_per_s + n_w / n_s * (k.shard_fixed_s + k.shard_per_element_s * n) +
                          link.latency_s;
      // Precision, not wire bits at n (a tiny tensor's header would dominate the latter).
      const double bits = 8.0 * probe_bytes[i][1].second / probe_bytes[i][1].first;
      if (canon[i] == identity || bits >= spec.min_bits) options.push_back({i, time, bits});
    }
    double best = 1e300, identity_time = 0.0;
    for (const auto& o : options) {
      best = std::min(best, o.time);
      if (canon[o.i] == identity) identity_time = o.time;
    }
    const Option* pick = nullptr;
    for (const auto& o : options) {  // most bits within the margin; ties to the earlier candidate
      if (o.time <= best * (1.0 + spec.margin) && (pick == nullptr || o.bits > pick->bits)) pick = &o;
    }
    plan.choices.push_back({t.name, t.numel, canon[pick->i], pick->time, identity_time, pick->bits});
    plan.modeled_step_s += pick->time;
    plan.identity_step_s += identity_time;
    rules << t.name << "=" << canon[pick->i] << "\n";
  }
  plan.costs = std::move(costs);
  plan.rules = rules.str();
  plan.startup_s = seconds_since(t0);
  return plan;
}

nlohmann::json auto_plan_json(const AutoPlan& plan, const AutoSpec& spec) {
  nlohmann::json j;
  j["link"] = spec.link;
  j["min_bits"] = spec.min_bits;
  j["margin"] = spec.margin;
  j["startup_seconds"] = plan.startup_s;
  j["modeled_step_seconds"] = plan.modeled_step_s;
  j["modeled_step_seconds_identity"] = plan.identity_step_s;
  j["costs"] = nlohmann::json::array();
  for (const auto& c : plan.costs) {
    j["costs"].push_back({{"spec", c.spec},
                          {"worker_fixed_s", c.worker_fixed_s},
                          {"worker_per_element_s", c.worker_per_element_s},
                          {"shard_fixed_s", c.shard_fixed_s},
                          {"shard_per_element_s", c.shard_per_element_s}});
  }
  j["choices"] = nlohmann::json::array();
  for (const auto& c : plan.choices) {
    j["choices"].push_back({{"tensor", c.name},
                            {"numel", c.numel},
                            {"spec", c.spec},
                            {"modeled_s", c.modeled_s},
                            {"identity_s", c.identity_s},
                            {"bits_per_element", c.bits_per_element}});
  }
  return j;
}

}  // namespace gradzip::experiments
