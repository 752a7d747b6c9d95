// Run-directory writer (see rundir.h).
#include "experiments/runlog/rundir.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <set>
#include <system_error>

#include <fmt/format.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "experiments/runlog/hostinfo.h"

namespace gradzip::runlog {

namespace {

std::string utc_now_iso() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms));
}

std::ofstream open_append(const std::filesystem::path& p) {
  std::ofstream f(p, std::ios::out | std::ios::app);
  if (!f) throw RunDirError("cannot open '" + p.string() + "' for writing: " + std::strerror(errno));
  return f;
}

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::out | std::ios::trunc);
  f << text;
  f.flush();
  if (!f) throw RunDirError("cannot write '" + p.string() + "': " + std::strerror(errno));
}

/// Writes via a temporary file in the same directory and renames it into place, so a
/// reader never sees a half-written file.
void write_file_atomic(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::path tmp = p;
  tmp += ".tmp";
  write_file(tmp, text);
  std::error_code ec;
  std::filesystem::rename(tmp, p, ec);
  if (ec) throw RunDirError("cannot rename '" + tmp.string() + "' to '" + p.string() + "': " + ec.message());
}

bool valid_column_name(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

spdlog::level::level_enum parse_level(const std::string& level) {
  const auto l = spdlog::level::from_str(level);
  if (l == spdlog::level::off && level != "off") {
    throw RunDirError("unknown log level '" + level + "' (trace|debug|info|warn|error)");
  }
  return l;
}

}  // namespace

std::string format_metric(const MetricValue& value) {
  if (const auto* i = std::get_if<std::int64_t>(&value)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&value)) {
    if (std::isnan(*d)) return "nan";
    if (std::isinf(*d)) return *d > 0 ? "inf" : "-inf";
    return fmt::format("{}", *d);  // shortest representation that round-trips
  }
  const std::string& s = std::get<std::string>(value);
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') q += '"';
    q += c;
  }
  q += '"';
  return q;
}

std::string default_run_dir(const std::string& command) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", &tm);
  return std::string("runs/") + buf + "-" + command;
}

std::unique_ptr<RunDir> RunDir::create(const std::filesystem::path& path, const RunDirOptions& options) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    if (!std::filesystem::is_directory(path, ec)) {
      throw RunDirError("run directory '" + path.string() + "' exists and is not a directory");
    }
    if (!options.allow_existing && !std::filesystem::is_empty(path, ec)) {
      throw RunDirError("run directory '" + path.string() +
                        "' exists and is not empty (choose another --run-dir or remove it)");
    }
  } else {
    std::filesystem::create_directories(path, ec);
    if (ec) throw RunDirError("cannot create run directory '" + path.string() + "': " + ec.message());
  }
  parse_level(options.log_level);  // validate before opening anything
  return std::unique_ptr<RunDir>(new RunDir(path, options));
}

RunDir::RunDir(std::filesystem::path path, const RunDirOptions& options)
    : path_(std::move(path)), start_(std::chrono::steady_clock::now()) {
  events_ = open_append(path_ / "events.jsonl");
  std::vector<spdlog::sink_ptr> sinks;
  try {
    auto file_sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>((path_ / "log.txt").string());
    file_sink->set_level(spdlog::level::debug);
    sinks.push_back(file_sink);
  } catch (const spdlog::spdlog_ex& e) {
    throw RunDirError("cannot open log file in '" + path_.string() + "': " + e.what());
  }
  const auto console_level = parse_level(options.log_level);
  if (options.log_to_console) {
    auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    console->set_level(console_level);
    sinks.push_back(console);
  }
  // Not registered globally: several RunDirs (e.g. in tests) must not collide by name.
  logger_ = std::make_shared<spdlog::logger>(options.logger_name, sinks.begin(), sinks.end());
  logger_->set_level(std::min(console_level, spdlog::level::debug));
  logger_->flush_on(spdlog::level::info);
}

RunDir::~RunDir() {
  if (logger_) logger_->flush();
}

double RunDir::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void RunDir::write_config(const std::string& ini_text) { write_file_atomic(path_ / "config.ini", ini_text); }

void RunDir::write_host_info(const std::string& torch_version) {
  write_file_atomic(path_ / "host.json", host_json(build_info(), host_info(), torch_version).dump(2) + "\n");
}

void RunDir::declare_metrics(const std::vector<MetricColumn>& columns) {
  std::lock_guard<std::mutex> lock(metrics_mu_);
  if (!columns_.empty()) throw RunDirError("metrics columns declared twice");
  if (columns.empty()) throw RunDirError("metrics need at least one column");
  std::set<std::string> seen;
  nlohmann::json doc = nlohmann::json::array();
  std::string header;
  for (const auto& c : columns) {
    if (!valid_column_name(c.name)) {
      throw RunDirError("bad metrics column name '" + c.name + "' (use [a-z0-9_]+ with the unit in the name)");
    }
    if (!seen.insert(c.name).second) throw RunDirError("duplicate metrics column '" + c.name + "'");
    doc.push_back({{"name", c.name}, {"unit", c.unit}, {"description", c.description}});
    header += (header.empty() ? "" : ",") + c.name;
  }
  write_file_atomic(path_ / "metrics_columns.json", doc.dump(2) + "\n");
  metrics_ = std::ofstream(path_ / "metrics.csv", std::ios::out | std::ios::trunc);
  if (!metrics_) throw RunDirError("cannot open '" + (path_ / "metrics.csv").string() + "': " + std::strerror(errno));
  metrics_ << header << "\n";
  metrics_.flush();
  columns_ = columns;
}

void RunDir::continue_metrics(const std::vector<MetricColumn>& columns, std::size_t keep_rows) {
  std::lock_guard<std::mutex> lock(metrics_mu_);
  if (!columns_.empty()) throw RunDirError("metrics columns declared twice");
  const std::filesystem::path csv = path_ / "metrics.csv";
  std::ifstream in(csv);
  if (!in) throw RunDirError("cannot read '" + csv.string() + "' to continue it");
  std::string header, expected;
  std::getline(in, header);
  for (const auto& c : columns) expected += (expected.empty() ? "" : ",") + c.name;
  if (header != expected) throw RunDirError("'" + csv.string() + "' has the header '" + header + "', expected '" +
                                            expected + "'");
  std::string kept = header + "\n";
  std::size_t rows = 0;
  for (std::string line; rows < keep_rows && std::getline(in, line);) {
    if (line.empty()) continue;
    kept += line + "\n";
    ++rows;
  }
  if (rows < keep_rows) {
    throw RunDirError(fmt::format("'{}' holds {} rows, {} were to be kept", csv.string(), rows, keep_rows));
  }
  bool more = false;
  for (std::string line; !more && std::getline(in, line);) more = !line.empty();
  in.close();
  if (more) write_file_atomic(csv, kept);
  metrics_ = open_append(csv);
  columns_ = columns;
}

void RunDir::append_metrics(const std::vector<MetricValue>& row) {
  std::lock_guard<std::mutex> lock(metrics_mu_);
  if (columns_.empty()) throw RunDirError("append_metrics before declare_metrics");
  if (row.size() != columns_.size()) {
    throw RunDirError(fmt::format("metrics row has {} values, {} columns declared", row.size(), columns_.size()));
  }
  std::string line;
  for (std::size_t i = 0; i < row.size(); ++i) {
    if (i) line += ',';
    line += format_metric(row[i]);
  }
  metrics_ << line << '\n';
  metrics_.flush();
  if (!metrics_) throw RunDirError("cannot append to '" + (path_ / "metrics.csv").string() + "'");
}

void RunDir::append_metrics(const std::map<std::string, MetricValue>& row) {
  std::vector<std::string> cells;
  {
    std::lock_guard<std::mutex> lock(metrics_mu_);
    if (columns_.empty()) throw RunDirError("append_metrics before declare_metrics");
    cells.resize(columns_.size());
    std::size_t matched = 0;
    for (std::size_t i = 0; i < columns_.size(); ++i) {
      const auto it = row.find(columns_[i].name);
      if (it != row.end()) {
        cells[i] = format_metric(it->second);
        ++matched;
      }
    }
    if (matched != row.size()) {
      for (const auto& kv : row) {
        bool known = false;
        for (const auto& c : columns_) known = known || c.name == kv.first;
        if (!known) throw RunDirError("unknown metrics column '" + kv.first + "'");
      }
    }
    std::string line;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      if (i) line += ',';
      line += cells[i];
    }
    metrics_ << line << '\n';
    metrics_.flush();
    if (!metrics_) throw RunDirError("cannot append to '" + (path_ / "metrics.csv").string() + "'");
  }
}

std::vector<MetricColumn> RunDir::metric_columns() const {
  std::lock_guard<std::mutex> lock(metrics_mu_);
  return columns_;
}

void RunDir::event(const std::string& type, const nlohmann::json& fields) {
  if (!fields.is_null() && !fields.is_object()) throw RunDirError("event fields must be a JSON object");
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it) {
      if (it.key() == "t_s" || it.key() == "time" || it.key() == "type") {
        throw RunDirError("event field '" + it.key() + "' is reserved");
      }
    }
  }
  // Time is taken under the lock so that t_s never decreases down the file.
  std::lock_guard<std::mutex> lock(events_mu_);
  nlohmann::json e = nlohmann::json::object();
  e["t_s"] = elapsed_s();
  e["time"] = utc_now_iso();
  e["type"] = type;
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it) e[it.key()] = it.value();
  }
  // Invalid UTF-8 in a string field is replaced rather than thrown at the caller.
  const std::string line = e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  events_ << line << '\n';
  events_.flush();
  if (!events_) throw RunDirError("cannot append to '" + (path_ / "events.jsonl").string() + "'");
}

void RunDir::write_summary(const nlohmann::json& summary) {
  const std::string text = summary.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard<std::mutex> lock(summary_mu_);
  write_file_atomic(path_ / "summary.json", text);
}

// ---- ProgressBar ---------------------------------------------------------------

ProgressBar::ProgressBar(std::string label, std::uint64_t total, std::FILE* out, int tty)
    : label_(std::move(label)), total_(total), out_(out) {
  tty_ = tty < 0 ? (out_ != nullptr && isatty(fileno(out_)) != 0) : tty != 0;
}

ProgressBar::~ProgressBar() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!finished_ && tty_ && last_decile_ >= 0 && out_) {
    std::fputc('\n', out_);  // leave the cursor on a fresh line
    std::fflush(out_);
  }
}

void ProgressBar::update(std::uint64_t done, const std::string& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_ || !out_) return;
  const std::uint64_t clamped = total_ > 0 && done > total_ ? total_ : done;
  const int decile = total_ > 0 ? static_cast<int>(clamped * 10 / total_) : 0;
  last_done_ = clamped;
  if (tty_) {
    const auto now = std::chrono::steady_clock::now();
    if (last_decile_ >= 0 && now - last_draw_ < std::chrono::milliseconds(100) && clamped != total_) return;
    last_draw_ = now;
    last_decile_ = decile;
    draw(clamped, status, false);
  } else if (decile > last_decile_) {
    last_decile_ = decile;
    draw(clamped, status, false);
  }
}

void ProgressBar::finish(const std::string& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_ || !out_) return;
  finished_ = true;
  draw(last_done_, status, true);
}

void ProgressBar::draw(std::uint64_t done, const std::string& status, bool final_line) {
  constexpr int kWidth = 30;
  const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  const int filled = static_cast<int>(frac * kWidth);
  std::string line = fmt::format("{} {:3d}%  {}/{}", label_, static_cast<int>(frac * 100.0), done, total_);
  if (!status.empty()) line += "  " + status;
  if (tty_) {
    const std::string bar = std::string(static_cast<std::size_t>(filled), '#') +
                            std::string(static_cast<std::size_t>(kWidth - filled), '-');
    // \r returns to column 0, \033[K clears the rest of the previous, longer line.
    std::fprintf(out_, "\r[%s] %s\033[K%s", bar.c_str(), line.c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

}  // namespace gradzip::runlog
