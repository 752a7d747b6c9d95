// Resuming a stopped training run (see resume.h).
#include "experiments/train/resume.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "comm/checkpoint.h"

#ifndef GRADZIP_TORCH_VERSION
#define GRADZIP_TORCH_VERSION ""
#endif

namespace gradzip::cli {
namespace fs = std::filesystem;
namespace {

/// The value of `--name X` / `--name=X` in args, or "" (and *given = false).
std::string find_option(const std::vector<std::string>& args, const std::string& name, bool* given) {
  *given = false;
  std::string value;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--" + name && i + 1 < args.size()) {
      *given = true;
      value = args[i + 1];
    } else if (args[i].rfind("--" + name + "=", 0) == 0) {
      *given = true;
      value = args[i].substr(name.size() + 3);
    }
  }
  return value;
}

/// argv with the run's config.ini and run directory added when --resume is given.
std::vector<std::string> resume_arguments(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  bool resume = false, config = false, run_dir = false;
  const std::string dir = find_option(args, "resume", &resume);
  if (!resume) return args;
  find_option(args, "config", &config);
  find_option(args, "run-dir", &run_dir);
  if (config) throw UsageError("--resume reads RUN_DIR/config.ini; drop --config");
  if (run_dir) throw UsageError("--resume continues RUN_DIR in place; drop --run-dir");
  if (!fs::is_regular_file(fs::path(dir) / "config.ini")) {
    throw UsageError("--resume " + dir + ": no config.ini there (not a gradzip train run directory)");
  }
  args.insert(args.begin() + 1, {"--config", (fs::path(dir) / "config.ini").string(), "--run-dir", dir});
  return args;
}

/// One metrics.csv row read back: the recorder's row and its modeled_comm_s.
struct CsvRow {
  experiments::EpochRow row;
  double modeled_comm_s = 0;
};

/// The well-formed rows of metrics.csv, in file order (a torn last line is skipped).
std::vector<CsvRow> read_metrics(const fs::path& csv) {
  std::ifstream in(csv);
  if (!in) throw UsageError("--resume: cannot read " + csv.string());
  std::string line;
  std::getline(in, line);
  std::map<std::string, std::size_t> col;
  {
    std::stringstream ss(line);
    for (std::string name; std::getline(ss, name, ',');) col.emplace(name, col.size());
  }
  for (const auto& c : experiments::train_metric_columns()) {
    if (!col.count(c.name)) throw UsageError("--resume: " + csv.string() + " has no column " + c.name);
  }
  std::vector<CsvRow> rows;
  while (std::getline(in, line)) {
    std::vector<double> v;
    std::stringstream ss(line);
    bool ok = true;
    for (std::string cell; std::getline(ss, cell, ',');) {
      char* end = nullptr;
      v.push_back(std::strtod(cell.c_str(), &end));
      ok = ok && !cell.empty() && end == cell.c_str() + cell.size();
    }
    if (!ok || v.size() != col.size()) break;
    auto at = [&](const char* name) { return v[col.at(name)]; };
    CsvRow r;
    r.row.epoch = static_cast<std::int64_t>(at("epoch"));
    r.row.step = static_cast<std::uint64_t>(at("step"));
    r.row.seconds = at("seconds");
    r.row.train_loss = at("train_loss");
    r.row.train_accuracy = at("train_accuracy");
    r.row.test_loss = at("test_loss");
    r.row.test_accuracy = at("test_accuracy");
    r.row.up = {at("up_payload_bytes"), at("up_framing_bytes"), at("up_tcpip_bytes")};
    r.row.down = {at("down_payload_bytes"), at("down_framing_bytes"), at("down_tcpip_bytes")};
    r.row.staleness_max = at("push_staleness_max");
    r.row.h2d_bytes = at("h2d_bytes");
    r.row.d2h_bytes = at("d2h_bytes");
    r.modeled_comm_s = at("modeled_comm_s");
    rows.push_back(r);
  }
  return rows;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

}  // namespace

int run_train_command(OptionTable& table, int argc, char** argv, const std::function<int()>& body) {
  std::vector<std::string> args;
  try {
    args = resume_arguments(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "gradzip " << table.command() << ": " << e.what() << "\n";
    return kExitUsage;
  }
  std::vector<const char*> ptrs;
  for (const auto& a : args) ptrs.push_back(a.c_str());
  return run_command(table, static_cast<int>(ptrs.size()), ptrs.data(), body);
}

ResumeState prepare_resume(const TrainOptions& o, const RunPlan& plan) {
  const fs::path dir(o.run.run_dir);
  const std::vector<CsvRow> rows = read_metrics(dir / "metrics.csv");
  // The epochs recorded in order from the first; the resume point must have its row.
  std::uint64_t recorded_step = 0;
  for (std::size_t i = 0; i < rows.size() && rows[i].row.epoch == static_cast<std::int64_t>(i + 1); ++i) {
    recorded_step = std::max(recorded_step, rows[i].row.step);
  }
  comm::CheckpointShape shape;
  shape.num_workers = plan.cfg.workers;
  shape.signature_hash = comm::signature_hash(plan.signature);
  shape.shard_numel = plan.layout.shard_numel;
  for (const auto& b : plan.layout.buckets) shape.bucket_numel.push_back(b.numel);
  const comm::ResumePoint point = comm::find_resume_point(plan.cfg.checkpoint_dir, shape, recorded_step);
  const std::uint64_t spe = steps_per_epoch(plan.train_images, o.topology.workers, o.data.batch_size);
  if (point.step >= plan.cfg.optimizer.total_steps) {
    throw UsageError("--resume " + dir.string() + ": the run already trained " + std::to_string(point.step) +
                     " of its " + std::to_string(plan.cfg.optimizer.total_steps) +
                     " steps (raise --epochs or --max-steps to continue it)");
  }
  ResumeState r;
  r.step = point.step;
  r.skipped = point.skipped;
  const auto epochs_done = static_cast<std::int64_t>(point.step / spe);
  for (const auto& c : rows) {
    if (c.row.epoch > epochs_done || static_cast<std::size_t>(c.row.epoch) != r.kept.size() + 1) break;
    r.kept.push_back(c.row);
    r.modeled_comm_s = c.modeled_comm_s;
  }
  r.event = {{"from_step", point.step},
             {"epoch", epochs_done},
             {"kept_rows", r.kept.size()},
             {"dropped_rows", rows.size() - r.kept.size()},
             {"checkpoint_dir", plan.cfg.checkpoint_dir},
             {"skipped", point.skipped}};
  const nlohmann::json old = read_json(dir / "summary.json");
  r.resumes = old.is_object() && old.contains("resumes") && old["resumes"].is_array() ? old["resumes"]
                                                                                     : nlohmann::json::array();
  std::string previous = "unreadable";
  if (old.is_object() && old.contains("status") && old["status"].is_string()) {
    previous = old["status"].get_ref<const std::string&>();
  }
  r.resumes.push_back({{"from_step", point.step}, {"previous_status", previous}});
  return r;
}

std::unique_ptr<runlog::RunDir> reopen_run_dir(const TrainOptions& o, const OptionTable& table,
                                               const ResumeState& resume) {
  runlog::RunDirOptions rdo;
  rdo.log_level = o.run.log_level;
  rdo.allow_existing = true;
  auto run = runlog::RunDir::create(o.run.run_dir, rdo);
  run->write_config(run_config_ini(table));
  run->write_host_info(GRADZIP_TORCH_VERSION);
  run->continue_metrics(experiments::train_metric_columns(), resume.kept.size());
  return run;
}

void continue_recording(const ResumeState& resume, runlog::RunDir* run, experiments::RunRecorder* recorder) {
  for (const auto& s : resume.skipped) run->logger()->warn("resume: passed over {}", s);
  recorder->summary()["resumes"] = resume.resumes;
  recorder->resume(resume.kept, resume.modeled_comm_s, resume.event);
}

}  // namespace gradzip::cli
