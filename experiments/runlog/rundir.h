// The run directory: everything one run leaves behind, in plain formats that plots/ and
// `gradzip report` read without gradzip.
//
//   config.ini            resolved configuration (what --print-config prints)
//   metrics.csv           one row per training step or evaluation; header written once
//   metrics_columns.json  [{"name", "unit", "description"}] for each metrics.csv column
//   events.jsonl          one JSON object per line: {"t_s", "time", "type", ...fields}
//   summary.json          final (or latest) results, rewritten atomically
//   host.json             build and machine facts (experiments/runlog/hostinfo.h)
//   log.txt               the spdlog log (everything at debug and above)
//
// A RunDir is created once per run, by the process that records it (`gradzip train`:
// the simulating process, the parent of local/netem processes, or worker 0 of a cluster;
// see experiments/train/accounting.h). All member functions are thread-safe: loader,
// compute and communication threads may append concurrently; each file has its own
// lock and every append is flushed before the call returns, so a crashed run still
// leaves complete lines.
#pragma once

#include <cstdint>
#include <cstdio>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace gradzip::runlog {

/// A run-directory failure: cannot create or write a file, or misuse (a metrics row
/// whose width differs from the declared columns, metrics before declare_metrics).
class RunDirError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One metrics.csv column. `name` should carry its unit ("bytes_up", "step_time_s").
struct MetricColumn {
  std::string name;         ///< CSV header; [a-z0-9_]+
  std::string unit;         ///< "bytes", "s", "fraction", "count", "" for labels
  std::string description;  ///< one line: what the value is
};

/// A metrics cell: integer, real or text (text is CSV-quoted when needed).
using MetricValue = std::variant<std::int64_t, double, std::string>;

/// Settings for RunDir::create.
struct RunDirOptions {
  std::string log_level = "info";     ///< console level: trace|debug|info|warn|error
  bool log_to_console = true;         ///< also log to stderr
  bool allow_existing = false;        ///< reuse a non-empty directory (files are appended/rewritten)
  std::string logger_name = "gradzip";
};

class RunDir {
 public:
  /// Creates `path` (and parents) and opens its files. Throws RunDirError when the
  /// directory cannot be created, is a file, or is non-empty without allow_existing.
  static std::unique_ptr<RunDir> create(const std::filesystem::path& path, const RunDirOptions& options = {});
  ~RunDir();
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  /// Writes config.ini (the resolved configuration text, e.g. OptionTable::to_ini()).
  void write_config(const std::string& ini_text);
  /// Writes host.json from build_info() / host_info(); `torch_version` comes from
  /// the caller (empty when torch is not linked).
  void write_host_info(const std::string& torch_version);

  /// Declares the metrics.csv columns and writes the header and metrics_columns.json.
  /// Must be called exactly once, before any append_metrics. Throws RunDirError on a
  /// second call, an empty list, a duplicate or malformed name.
  void declare_metrics(const std::vector<MetricColumn>& columns);
  /// Continues the metrics.csv of an earlier run in this directory (a resumed run):
  /// checks that its header names `columns`, keeps its first `keep_rows` rows (dropping
  /// the rest, rewritten atomically) and appends after them. Instead of declare_metrics;
  /// throws RunDirError when the file is missing, has another header or fewer rows.
  void continue_metrics(const std::vector<MetricColumn>& columns, std::size_t keep_rows);
  /// Appends one row; `row` has one value per declared column, in order.
  void append_metrics(const std::vector<MetricValue>& row);
  /// Appends one row by column name; columns not named are left empty. Unknown names
  /// throw RunDirError.
  void append_metrics(const std::map<std::string, MetricValue>& row);
  /// Declared columns (empty before declare_metrics).
  std::vector<MetricColumn> metric_columns() const;

  /// Appends {"t_s": seconds since create, "time": UTC ISO-8601, "type": type, ...fields}
  /// to events.jsonl. `fields` must be a JSON object (or null); its keys must not be
  /// "t_s", "time" or "type".
  void event(const std::string& type, const nlohmann::json& fields = nlohmann::json::object());

  /// Writes summary.json atomically (temporary file + rename); may be called repeatedly.
  void write_summary(const nlohmann::json& summary);

  /// The run's logger: log.txt (debug and above) plus stderr at options.log_level.
  std::shared_ptr<spdlog::logger> logger() const { return logger_; }

  /// Seconds since create (steady clock).
  double elapsed_s() const;

 private:
  RunDir(std::filesystem::path path, const RunDirOptions& options);

  std::filesystem::path path_;
  std::chrono::steady_clock::time_point start_;
  std::shared_ptr<spdlog::logger> logger_;

  mutable std::mutex metrics_mu_;
  std::ofstream metrics_;
  std::vector<MetricColumn> columns_;

  std::mutex events_mu_;
  std::ofstream events_;

  std::mutex summary_mu_;
};

/// Formats a metrics cell as CSV text: integers in decimal, reals in the shortest
/// text that reads back to the same double ("nan", "inf" for non-finite), text quoted
/// per RFC 4180 when it holds a comma, quote or line break.
std::string format_metric(const MetricValue& value);

/// "runs/<YYYYmmdd-HHMMSS>-<command>" in UTC, relative to the current directory.
std::string default_run_dir(const std::string& command);

/// A progress display for long loops. On a TTY it redraws one line in place
/// ("[#####-----]  52%  520/1000  loss 0.41"), at most ~10 times a second; otherwise it
/// prints a plain line at every 10% and at the end. Thread-safe.
class ProgressBar {
 public:
  /// Writes to `out` (not owned; stderr by default). `tty` < 0: detect with isatty.
  ProgressBar(std::string label, std::uint64_t total, std::FILE* out = stderr, int tty = -1);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  /// Reports `done` of `total` units with a short status text.
  void update(std::uint64_t done, const std::string& status = "");
  /// Final line (at the last reported count) and newline; later updates are ignored.
  void finish(const std::string& status = "");

 private:
  void draw(std::uint64_t done, const std::string& status, bool final_line);

  std::mutex mu_;
  std::string label_;
  std::uint64_t total_;
  std::FILE* out_;
  bool tty_;
  bool finished_ = false;
  int last_decile_ = -1;
  std::uint64_t last_done_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace gradzip::runlog
