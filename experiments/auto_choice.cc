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

// Probe sizes. The fixed cost is timed at a tensor so small that its time is almost all
// fixed cost (extrapolating it from a 4096-element fit made it a small difference of two
// large, noisy times: a few percent of load on one probe moved it by more than the fixed
// cost itself). The per-element cost is the slope from there to the large probe. The
// small probe only sizes messages (message_bytes, precision).
constexpr std::size_t kTinyProbe = 16;
constexpr std::size_t kSmallProbe = 4096;
constexpr std::size_t kLargeProbe = 262144;
/// Timed rounds; in each, every candidate is timed once at both sizes (round-robin), and
/// each cost is the minimum over rounds: load only ever adds time, and interleaving makes
/// a loaded stretch hit all candidates alike instead of the one measured then.
constexpr int kRounds = 5;
/// Calls per clock reading at the tiny size (one call is ~0.1 us, near the clock's cost).
constexpr int kTinyCalls = 32;

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
  double worker_s = 1e30, shard_s = 1e30;  ///< least seconds per call seen so far
};

/// One candidate under measurement: its compressor, and per probe size its own
/// error-feedback state (sized by the memory on first use) and accumulator.
struct Candidate {
  quant::Compressor c;
  quant::MemoryState state[2];
  std::vector<float> acc[2];
  std::vector<std::uint8_t> msg;
  Probe best[2];  ///< [0] tiny probe, [1] large probe
};

/// Times `calls` worker steps of g in a row, then `calls` shard decode_adds of the last
/// message, and lowers cand->best[size] to the seconds per call seen.
void time_calls(Candidate* cand, int size, const std::vector<float>& g, int calls, std::uint64_t round) {
  const std::size_t n = g.size();
  const quant::Compressor& c = cand->c;
  std::vector<float>& acc = cand->acc[size];
  acc.resize(n, 0.0f);
  std::size_t bytes = 0;
  quant::Status st;
  auto t0 = Clock::now();
  for (int k = 0; k < calls && st.ok(); ++k) {
    // The worker's step as the trainer runs it: the fused error-feedback pass.
    const quant::SeedContext ctx{7, round * static_cast<std::uint64_t>(calls) + k, 0, 0};
    st = c.memory->encode_step(*c.codec, g.data(), n, ctx, &cand->state[size], cand->msg.data(), cand->msg.size(), &bytes);
  }
  const double worker_s = seconds_since(t0) / calls;
  t0 = Clock::now();
  for (int k = 0; k < calls && st.ok(); ++k) st = c.codec->decode_add(cand->msg.data(), bytes, acc.data(), n, 0.5f);
  const double shard_s = seconds_since(t0) / calls;
  if (!st.ok()) throw std::invalid_argument("auto: candidate " + c.spec() + " failed on probe data: " + st.to_string());
  cand->best[size].worker_s = std::min(cand->best[size].worker_s, worker_s);
  cand->best[size].shard_s = std::min(cand->best[size].shard_s, shard_s);
}

/// Affine cost a + b n through the least times at the tiny and the large probe; neither
/// part negative (b is the slope, a what is left at the tiny size: almost all of it).
void fit(double tiny_s, double large_s, double* fixed_s, double* per_element_s) {
  *per_element_s = std::max(0.0, (large_s - tiny_s) / static_cast<double>(kLargeProbe - kTinyProbe));
  *fixed_s = std::max(0.0, tiny_s - *per_element_s * static_cast<double>(kTinyProbe));
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
  const std::vector<float> tiny = probe(kTinyProbe), large = probe(kLargeProbe);
  std::vector<Candidate> cands(candidates.size());
  for (std::size_t i = 0; i < cands.size(); ++i) {
    cands[i].c = quant::make_compressor(candidates[i]);
    cands[i].msg.resize(cands[i].c.codec->max_encoded_bytes(kLargeProbe));
  }
  // Round 0 is untimed (first touch of buffers and code); each round starts one
  // candidate later so none always follows the same one.
  const std::size_t m = cands.size();
  for (int r = 0; r <= kRounds; ++r) {
    for (std::size_t k = 0; k < m; ++k) {
      Candidate& cand = cands[(k + static_cast<std::size_t>(r)) % m];
      time_calls(&cand, 0, tiny, kTinyCalls, static_cast<std::uint64_t>(r));
      time_calls(&cand, 1, large, 1, static_cast<std::uint64_t>(r));
      if (r == 0) cand.best[0] = cand.best[1] = Probe{};
    }
  }
  std::vector<CodecCost> costs;
  for (const auto& cand : cands) {
    CodecCost cost;
    cost.spec = cand.c.spec();
    fit(cand.best[0].worker_s, cand.best[1].worker_s, &cost.worker_fixed_s, &cost.worker_per_element_s);
    fit(cand.best[0].shard_s, cand.best[1].shard_s, &cost.shard_fixed_s, &cost.shard_per_element_s);
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
  const std::vector<float> small = probe(kSmallProbe), large = probe(kLargeProbe);
  for (const auto& c : canon) {
    const auto it = std::find_if(costs.begin(), costs.end(), [&](const CodecCost& k) { return k.spec == c; });
    if (it == costs.end()) throw std::invalid_argument("auto: no measured cost for candidate " + c);
    const quant::Compressor comp = quant::make_compressor(c);
    std::vector<std::pair<double, double>> pb;
    for (const std::vector<float>* x : {&small, &large}) {
      pb.emplace_back(static_cast<double>(x->size()), static_cast<double>(comp.codec->encode(x->data(), x->size(), {}).size()));
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
