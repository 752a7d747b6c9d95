// Run-directory reader and the comparison table (see report.h).
#include "experiments/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

namespace gradzip::experiments {
namespace fs = std::filesystem;
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<std::string> split_csv_line(const std::string& line) {
  // metrics.csv holds numbers and plain names: no quoting needed, but tolerate "x".
  std::vector<std::string> cells;
  std::string cell;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') {
      quoted = !quoted;
    } else if (c == ',' && !quoted) {
      cells.push_back(cell);
      cell.clear();
    } else if (c != '\r') {
      cell += c;
    }
  }
  cells.push_back(cell);
  return cells;
}

double parse_cell(const std::string& text, const std::string& where) {
  if (text.empty() || text == "nan" || text == "NaN") return kNaN;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) throw ReportError(where + ": '" + text + "' is not a number");
  return v;
}

double json_number(const nlohmann::json& j, const char* key, const std::string& file, bool required) {
  if (!j.contains(key)) {
    if (required) throw ReportError(file + ": missing \"" + key + "\"");
    return kNaN;
  }
  if (!j[key].is_number()) throw ReportError(file + ": \"" + key + "\" is not a number");
  return j[key].get<double>();
}

std::string json_string(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string human_bytes(double b) {
  if (!std::isfinite(b)) return "n/a";
  if (b >= 1e9) return fmt("%.2f GB", b / 1e9);
  if (b >= 1e6) return fmt("%.2f MB", b / 1e6);
  if (b >= 1e3) return fmt("%.1f kB", b / 1e3);
  return fmt("%.0f B", b);
}

std::string full(double v) {
  if (!std::isfinite(v)) return "";
  return fmt("%.10g", v);
}

}  // namespace

RunRecord load_run(const std::string& dir) {
  RunRecord run;
  run.dir = dir;
  run.name = fs::path(dir).lexically_normal().filename().string();
  if (run.name.empty() || run.name == ".") run.name = fs::path(dir).lexically_normal().parent_path().filename().string();
  if (!fs::is_directory(dir)) throw ReportError("'" + dir + "' is not a directory");

  const std::string summary_path = (fs::path(dir) / "summary.json").string();
  std::ifstream sf(summary_path);
  if (!sf) throw ReportError(summary_path + ": missing (not a finished run directory?)");
  nlohmann::json s = nlohmann::json::parse(sf, nullptr, false);
  if (s.is_discarded() || !s.is_object()) throw ReportError(summary_path + ": not a JSON object");
  run.compressor = json_string(s, "compressor");
  if (run.compressor.empty()) throw ReportError(summary_path + ": missing \"compressor\"");
  const double workers = json_number(s, "workers", summary_path, true);
  const double shards = json_number(s, "shards", summary_path, true);
  const double params = json_number(s, "parameters", summary_path, true);
  if (s.contains("aggregation") && s["aggregation"].is_string()) run.aggregation = s["aggregation"].get<std::string>();
  const bool collective = run.aggregation != "ps";
  if (!(workers >= 1) || !(shards >= (collective ? 0 : 1)) || !(params >= 1)) {
    throw ReportError(summary_path + ": workers and parameters must be >= 1, shards >= 1 (>= 0 under a collective)");
  }
  if (collective && !json_string(s, "aggregation_spec").empty()) run.compressor = json_string(s, "aggregation_spec");
  run.workers = static_cast<std::uint32_t>(workers);
  run.shards = static_cast<std::uint32_t>(shards);
  run.parameters = static_cast<std::uint64_t>(params);
  run.status = json_string(s, "status");
  const double cps = json_number(s, "compute_seconds_per_step", summary_path, false);
  run.compute_seconds_per_step = std::isfinite(cps) && cps > 0 ? cps : 0;
  const double sps = json_number(s, "step_seconds", summary_path, false);
  run.step_seconds = std::isfinite(sps) && sps > 0 ? sps : 0;
  run.bottleneck = json_string(s, "bottleneck");
  if (s.contains("shard_fraction") && s["shard_fraction"].is_array()) {
    for (const auto& f : s["shard_fraction"]) {
      if (!f.is_number()) throw ReportError(summary_path + ": \"shard_fraction\" holds a non-number");
      run.shard_fraction.push_back(f.get<double>());
    }
    if (run.shard_fraction.size() != run.shards) run.shard_fraction.clear();  // inconsistent: use uniform
  }
  if (s.contains("stages") && s["stages"].is_object()) {
    for (const auto& [k, v] : s["stages"].items()) {
      if (v.is_number()) run.stages[k] = v.get<double>();
    }
  }

  const std::string metrics_path = (fs::path(dir) / "metrics.csv").string();
  std::ifstream mf(metrics_path);
  if (!mf) throw ReportError(metrics_path + ": missing");
  std::string line;
  if (!std::getline(mf, line)) throw ReportError(metrics_path + ": empty (no header line)");
  const auto header = split_csv_line(line);
  auto column = [&](const std::string& name, bool required) -> int {
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name) return static_cast<int>(i);
    }
    if (required) throw ReportError(metrics_path + ": no column '" + name + "'");
    return -1;
  };
  const int c_step = column("step", true);
  const int c_seconds = column("seconds", true);
  const int c_acc = column("test_accuracy", true);
  const int c_up = column("up_payload_bytes", true);
  const int c_down = column("down_payload_bytes", true);
  const int c_upf = column("up_framing_bytes", false);
  const int c_upt = column("up_tcpip_bytes", false);
  const int c_downf = column("down_framing_bytes", false);
  const int c_downt = column("down_tcpip_bytes", false);
  int line_no = 1;
  while (std::getline(mf, line)) {
    ++line_no;
    if (line.empty() || line == "\r") continue;
    const auto cells = split_csv_line(line);
    if (cells.size() != header.size()) {
      throw ReportError(metrics_path + ":" + std::to_string(line_no) + ": " + std::to_string(cells.size()) +
                        " cells, header has " + std::to_string(header.size()));
    }
    auto get = [&](int c, bool required) {
      if (c < 0) return 0.0;
      const std::string where = metrics_path + ":" + std::to_string(line_no) + " column " + header[c];
      const double v = parse_cell(cells[c], where);
      if (required && !std::isfinite(v)) throw ReportError(where + ": empty");
      return std::isfinite(v) ? v : 0.0;
    };
    MetricRow r;
    r.step = get(c_step, true);
    r.seconds = get(c_seconds, true);
    r.test_accuracy = parse_cell(cells[c_acc], metrics_path + ":" + std::to_string(line_no) + " column test_accuracy");
    if (r.test_accuracy > 1.0 + 1e-9) r.test_accuracy /= 100.0;  // written as percent
    r.up = {get(c_up, true), get(c_upf, false), get(c_upt, false)};
    r.down = {get(c_down, true), get(c_downf, false), get(c_downt, false)};
    if (!run.rows.empty() && r.step < run.rows.back().step) {
      throw ReportError(metrics_path + ":" + std::to_string(line_no) + ": step goes backwards");
    }
    run.rows.push_back(r);
  }
  if (run.rows.empty()) throw ReportError(metrics_path + ": no rows");
  return run;
}

std::uint32_t collective_ring_rounds(const std::string& aggregation, std::uint32_t workers) {
  if (aggregation == "ps") return 0;
  const std::uint32_t hops = workers > 1 ? workers - 1 : 1;
  if (aggregation == "allgather") return hops;
  if (aggregation == "powersgd") return 4 * hops;
  return 2 * hops;  // ring allreduce: reduce-scatter + allgather
}

std::vector<RunSegment> run_segments(const RunRecord& run) {
  std::vector<RunSegment> segs;
  // Measured time outside the training steps (evaluations), spread over the segments.
  double outside_steps_s = 0;
  if (run.step_seconds > 0 && run.compute_seconds_per_step > 0 && !run.rows.empty()) {
    const MetricRow& last = run.rows.back();
    outside_steps_s = std::max(0.0, last.seconds - last.step * run.step_seconds) / static_cast<double>(run.rows.size());
  }
  MetricRow prev;  // step 0, zero bytes
  for (const auto& r : run.rows) {
    RunSegment seg;
    const double steps = r.step - prev.step;
    seg.steps = static_cast<std::uint64_t>(std::max(0.0, steps));
    const double wall = r.seconds - prev.seconds;
    seg.compute_s = run.compute_seconds_per_step > 0 ? steps * run.compute_seconds_per_step + outside_steps_s : wall;
    seg.measured_comm_s = std::max(0.0, wall - seg.compute_s);
    seg.test_accuracy = r.test_accuracy;
    seg.mean_step_traffic.num_shards = run.shards;
    seg.mean_step_traffic.collective_rounds = collective_ring_rounds(run.aggregation, run.workers);
    seg.mean_step_traffic.shard_fraction = run.shard_fraction;
    const double per = steps > 0 ? 1.0 / (steps * run.workers) : 0.0;
    WireBytes up{(r.up.payload_bytes - prev.up.payload_bytes) * per,
                       (r.up.framing_bytes - prev.up.framing_bytes) * per,
                       (r.up.tcpip_bytes - prev.up.tcpip_bytes) * per};
    WireBytes down{(r.down.payload_bytes - prev.down.payload_bytes) * per,
                         (r.down.framing_bytes - prev.down.framing_bytes) * per,
                         (r.down.tcpip_bytes - prev.down.tcpip_bytes) * per};
    seg.mean_step_traffic.up.assign(run.workers, up);
    seg.mean_step_traffic.down.assign(run.workers, down);
    segs.push_back(std::move(seg));
    prev = r;
  }
  return segs;
}

ReportTable make_report(const std::vector<RunRecord>& runs, const ReportSettings& settings) {
  if (runs.empty()) throw ReportError("no run directories to report");
  ReportTable table;
  for (const auto& l : settings.links) table.links.push_back(l.name);

  auto best_of = [](const RunRecord& r) {
    double best = kNaN;
    for (const auto& row : r.rows) {
      if (std::isfinite(row.test_accuracy) && !(best >= row.test_accuracy)) best = row.test_accuracy;
    }
    return best;
  };
  table.target_accuracy = settings.target_accuracy;
  if (!std::isfinite(table.target_accuracy)) {
    double lowest = kNaN;
    for (const auto& r : runs) {
      const double b = best_of(r);
      if (std::isfinite(b) && !(lowest <= b)) lowest = b;
    }
    table.target_accuracy = std::isfinite(lowest) ? std::floor(lowest / 0.005) * 0.005 : kNaN;
  }

  for (const auto& run : runs) {
    ReportRow row;
    row.run = run.name;
    row.compressor = run.compressor;
    row.workers = run.workers;
    row.shards = run.shards;
    const MetricRow& last = run.rows.back();
    const double worker_steps = last.step * run.workers;
    row.up_bytes_per_step = worker_steps > 0
                                ? (last.up.payload_bytes + last.up.framing_bytes + last.up.tcpip_bytes) / worker_steps
                                : kNaN;
    row.down_bytes_per_step =
        worker_steps > 0 ? (last.down.payload_bytes + last.down.framing_bytes + last.down.tcpip_bytes) / worker_steps
                         : kNaN;
    const double payload_per_step = worker_steps > 0 ? last.up.payload_bytes / worker_steps : kNaN;
    row.compression_ratio = payload_per_step > 0 ? 4.0 * static_cast<double>(run.parameters) / payload_per_step : kNaN;
    row.best_accuracy = best_of(run);
    row.final_accuracy = kNaN;
    for (auto it = run.rows.rbegin(); it != run.rows.rend(); ++it) {
      if (std::isfinite(it->test_accuracy)) {
        row.final_accuracy = it->test_accuracy;
        break;
      }
    }
    row.steps_per_s = last.seconds > 0 ? last.step / last.seconds : kNaN;
    row.bottleneck = run.bottleneck.empty() ? "n/a" : run.bottleneck;

    const auto segs = run_segments(run);
    row.tta_measured_s = kNaN;
    if (std::isfinite(table.target_accuracy)) {
      std::vector<double> measured;
      for (const auto& r : run.rows) measured.push_back(r.seconds);
      if (auto t = time_to_accuracy(segs, measured, table.target_accuracy)) row.tta_measured_s = *t;
    }
    for (const auto& link : settings.links) {
      double t = kNaN;
      if (std::isfinite(table.target_accuracy)) {
        if (auto v = time_to_accuracy(segs, modeled_timeline(link, segs), table.target_accuracy)) t = *v;
      }
      row.tta_modeled_s.push_back(t);
    }
    table.rows.push_back(std::move(row));
  }
  return table;
}

std::string report_markdown(const ReportTable& t) {
  std::ostringstream os;
  os << "Target test accuracy: "
     << (std::isfinite(t.target_accuracy) ? fmt("%.1f%%", t.target_accuracy * 100) : std::string("n/a"))
     << ". Bytes are per worker per step (payload + ZeroMQ framing + TCP/IP estimate); "
        "ratio = fp32 gradient bytes / uplink payload bytes; modeled times use experiments/link_model.h "
        "(measured compute + modeled communication with incast; W x 0 = a collective aggregation without "
        "shards, modeled as a ring among the workers).\n\n";
  os << "| run | codec | W x S | up B/step | down B/step | ratio | best acc | final acc | steps/s | TTA measured |";
  for (const auto& l : t.links) os << " TTA " << l << " |";
  os << " bottleneck |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|";
  for (std::size_t i = 0; i < t.links.size(); ++i) os << "---:|";
  os << "---|\n";
  auto pct = [](double v) { return std::isfinite(v) ? fmt("%.2f%%", v * 100) : std::string("n/a"); };
  auto secs = [](double v) { return std::isfinite(v) ? format_seconds(v) : std::string("not reached"); };
  for (const auto& r : t.rows) {
    os << "| " << r.run << " | `" << r.compressor << "` | " << r.workers << " x " << r.shards << " | "
       << human_bytes(r.up_bytes_per_step) << " | " << human_bytes(r.down_bytes_per_step) << " | "
       << (std::isfinite(r.compression_ratio) ? fmt("%.1fx", r.compression_ratio) : "n/a") << " | "
       << pct(r.best_accuracy) << " | " << pct(r.final_accuracy) << " | "
       << (std::isfinite(r.steps_per_s) ? fmt("%.2f", r.steps_per_s) : "n/a") << " | " << secs(r.tta_measured_s)
       << " |";
    for (double v : r.tta_modeled_s) os << " " << secs(v) << " |";
    os << " " << r.bottleneck << " |\n";
  }
  return os.str();
}

std::string report_csv(const ReportTable& t) {
  std::ostringstream os;
  os << "run,compressor,workers,shards,up_bytes_per_step,down_bytes_per_step,compression_ratio,best_accuracy,"
        "final_accuracy,steps_per_s,target_accuracy,tta_measured_s";
  for (const auto& l : t.links) os << ",tta_" << l << "_s";
  os << ",bottleneck\n";
  auto quote = [](const std::string& s) {
    std::string q = "\"";
    for (char c : s) q += (c == '"') ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  for (const auto& r : t.rows) {
    os << quote(r.run) << "," << quote(r.compressor) << "," << r.workers << "," << r.shards << ","
       << full(r.up_bytes_per_step) << "," << full(r.down_bytes_per_step) << "," << full(r.compression_ratio) << ","
       << full(r.best_accuracy) << "," << full(r.final_accuracy) << "," << full(r.steps_per_s) << ","
       << full(t.target_accuracy) << "," << full(r.tta_measured_s);
    for (double v : r.tta_modeled_s) os << "," << full(v);
    os << "," << quote(r.bottleneck) << "\n";
  }
  return os.str();
}

std::string report_timelines_csv(const std::vector<RunRecord>& runs, const std::vector<LinkProfile>& links) {
  std::ostringstream os;
  os << "run,compressor,link,step,measured_seconds,modeled_seconds,test_accuracy\n";
  for (const auto& run : runs) {
    const auto segs = run_segments(run);
    for (const auto& link : links) {
      const auto modeled = modeled_timeline(link, segs);
      for (std::size_t i = 0; i < run.rows.size(); ++i) {
        os << '"' << run.name << "\",\"" << run.compressor << "\",\"" << link.name << "\"," << full(run.rows[i].step)
           << "," << full(run.rows[i].seconds) << "," << full(modeled[i]) << "," << full(run.rows[i].test_accuracy)
           << "\n";
      }
    }
  }
  return os.str();
}

}  // namespace gradzip::experiments
