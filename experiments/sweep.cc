// Sweep files, their expansion and a bounded parallel runner (see sweep.h).
#include "experiments/sweep.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

namespace gradzip::experiments {
namespace fs = std::filesystem;
namespace {

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::vector<std::string> split_ws(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  std::string w;
  while (is >> w) out.push_back(w);
  return out;
}

// Plural aliases of the issue's wording -> train option names.
std::string canonical_key(const std::string& key) {
  if (key == "codecs" || key == "codec" || key == "compressors") return "compressor";
  if (key == "links") return "link";
  if (key == "seeds") return "seed";
  return key;
}

bool valid_option_name(const std::string& key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

// File-name-safe text: keeps [A-Za-z0-9.+-=], turns everything else into '_'.
std::string slug(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '+' || c == '-' || c == '=';
    out += keep ? c : '_';
  }
  return out;
}

// "45 s", "12m05s", "2h03m".
std::string duration_text(double seconds) {
  const long t = std::isfinite(seconds) && seconds > 0 ? std::lround(seconds) : 0;
  char buf[48];
  if (t < 60) {
    std::snprintf(buf, sizeof buf, "%ld s", t);
  } else if (t < 3600) {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  }
  return buf;
}

std::string printf_text(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

double parse_positive(const std::string& origin, int line, const std::string& key, const std::string& value) {
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || end != value.c_str() + value.size() || !std::isfinite(v) || v <= 0) {
    throw SweepError(origin + ":" + std::to_string(line) + ": " + key + " = " + value + " is not a positive number");
  }
  return v;
}

}  // namespace

SweepSpec parse_sweep_text(const std::string& text, const std::string& origin, const std::string& base_dir) {
  SweepSpec spec;
  std::istringstream in(text);
  std::string raw;
  std::string section;
  int line = 0;
  std::set<std::string> seen;
  auto fail = [&](const std::string& msg) { throw SweepError(origin + ":" + std::to_string(line) + ": " + msg); };
  while (std::getline(in, raw)) {
    ++line;
    std::string l = raw;
    for (const char* c : {"#", ";"}) {
      // A comment starts at '#'/';' at the beginning or after whitespace (specs never hold spaces).
      std::size_t pos = 0;
      while ((pos = l.find(c, pos)) != std::string::npos) {
        if (pos == 0 || l[pos - 1] == ' ' || l[pos - 1] == '\t') {
          l = l.substr(0, pos);
          break;
        }
        ++pos;
      }
    }
    l = trim(l);
    if (l.empty()) continue;
    if (l.front() == '[') {
      if (l.back() != ']') fail("section header '" + l + "' lacks ']'");
      section = trim(l.substr(1, l.size() - 2));
      if (section != "sweep" && section != "axes" && section != "fixed") {
        fail("unknown section [" + section + "]; allowed: [sweep] [axes] [fixed]");
      }
      continue;
    }
    const auto eq = l.find('=');
    if (eq == std::string::npos) fail("'" + l + "' is not key = value");
    const std::string key = trim(l.substr(0, eq));
    const std::string value = trim(l.substr(eq + 1));
    if (section.empty()) fail("'" + key + "' before any [section]");
    if (!seen.insert(section + "." + canonical_key(key)).second) fail("'" + key + "' given twice in [" + section + "]");
    if (section == "sweep") {
      if (key == "base") {
        spec.base_config = value;
        if (!value.empty() && !base_dir.empty() && fs::path(value).is_relative()) {
          spec.base_config = (fs::path(base_dir) / value).lexically_normal().string();
        }
      } else if (key == "out") {
        spec.out_dir = value;
      } else if (key == "parallel") {
        const double p = parse_positive(origin, line, key, value);
        if (p != std::floor(p) || p > 64) fail("parallel = " + value + " must be an integer 1..64");
        spec.parallel = static_cast<int>(p);
      } else if (key == "timeout") {
        spec.run_timeout_s = parse_positive(origin, line, key, value);
      } else if (key == "names") {
        if (value != "varying" && value != "all") fail("names = " + value + " must be 'varying' or 'all'");
        spec.name_every_axis = value == "all";
      } else {
        fail("unknown key '" + key + "' in [sweep]; allowed: base out parallel timeout names");
      }
      continue;
    }
    const std::string option = canonical_key(key);
    if (!valid_option_name(option)) fail("'" + key + "' is not an option name (lower-case words joined by '-')");
    if (option == "run-dir" || option == "config") fail("'" + key + "' is set by the sweep itself");
    if (section == "fixed") {
      spec.fixed.emplace_back(option, value);
    } else {
      auto values = split_ws(value);
      if (values.empty()) fail("axis '" + key + "' has no values");
      std::set<std::string> uniq(values.begin(), values.end());
      if (uniq.size() != values.size()) fail("axis '" + key + "' repeats a value");
      spec.axes.emplace_back(option, std::move(values));
    }
  }
  for (const auto& [k, v] : spec.fixed) {
    for (const auto& axis : spec.axes) {
      if (axis.first == k) throw SweepError(origin + ": '" + k + "' is both an axis and a fixed option");
    }
  }
  if (spec.out_dir.empty()) throw SweepError(origin + ": [sweep] needs out = <folder>");
  if (!spec.base_config.empty() && !fs::exists(spec.base_config)) {
    throw SweepError(origin + ": base config '" + spec.base_config + "' does not exist");
  }
  return spec;
}

SweepSpec parse_sweep_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw SweepError("cannot read sweep file '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_sweep_text(ss.str(), path, fs::path(path).parent_path().string());
}

std::vector<SweepRun> expand_sweep(const SweepSpec& spec) {
  std::vector<SweepRun> runs;
  std::size_t total = 1;
  for (const auto& axis : spec.axes) total *= axis.second.size();
  std::set<std::string> names;
  for (std::size_t index = 0; index < total; ++index) {
    SweepRun run;
    run.settings = spec.fixed;
    // Mixed-radix digits of index, last axis least significant.
    std::vector<std::size_t> digit(spec.axes.size());
    std::size_t rest = index;
    for (std::size_t a = spec.axes.size(); a-- > 0;) {
      digit[a] = rest % spec.axes[a].second.size();
      rest /= spec.axes[a].second.size();
    }
    for (std::size_t a = 0; a < spec.axes.size(); ++a) {
      const auto& [option, values] = spec.axes[a];
      run.settings.emplace_back(option, values[digit[a]]);
      if (values.size() > 1 || spec.axes.size() == 1 || spec.name_every_axis) {
        run.name += (run.name.empty() ? "" : "__") + slug(option + "=" + values[digit[a]]);
      }
    }
    if (run.name.empty()) run.name = "run";
    if (!names.insert(run.name).second) run.name += "__" + std::to_string(index);
    run.dir = (fs::path(spec.out_dir) / run.name).string();
    runs.push_back(std::move(run));
  }
  return runs;
}

bool run_finished(const std::string& run_dir) {
  std::ifstream f(fs::path(run_dir) / "summary.json");
  if (!f) return false;
  nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return false;
  if (j.contains("status")) return j["status"].is_string() && j["status"].get<std::string>() == "complete";
  return true;
}

std::string run_result_line(const std::string& run_dir) {
  std::ifstream f(fs::path(run_dir) / "summary.json");
  if (!f) return "";
  const nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "";
  const auto number = [&j](const char* key, double* v) {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_number()) return false;
    *v = it->get<double>();
    return true;
  };
  std::string line;
  const auto add = [&line](const std::string& part) { line += (line.empty() ? "" : ", ") + part; };
  double v = 0;
  if (number("final_test_accuracy", &v)) {
    add(printf_text("final test accuracy %.2f%%", 100 * v));
    if (number("best_test_accuracy", &v)) line += printf_text(" (best %.2f%%)", 100 * v);
  }
  if (number("steps", &v)) add(printf_text("%.0f steps", v));
  if (number("bytes_up", &v)) add(printf_text("%.1f MB up", v / 1e6));
  if (number("bytes_down", &v)) add(printf_text("%.1f MB down", v / 1e6));
  return line;
}

SweepResult run_sweep(const SweepSpec& spec, const SweepRunnerOptions& options) {
  if (options.command.empty()) throw SweepError("sweep runner: empty command");
  if (spec.parallel < 1) throw SweepError("sweep: parallel must be >= 1");
  SweepResult result;
  std::error_code ec;
  fs::create_directories(spec.out_dir, ec);
  if (ec) throw SweepError("sweep: cannot create '" + spec.out_dir + "': " + ec.message());

  struct Pending {
    SweepRun run;
    std::vector<std::string> argv;
  };
  std::vector<Pending> queue;
  for (auto& run : expand_sweep(spec)) {
    if (run_finished(run.dir)) {
      result.skipped.push_back(run.name);
      continue;
    }
    Pending p;
    p.argv = options.command;
    if (!spec.base_config.empty()) p.argv.insert(p.argv.end(), {"--config", spec.base_config});
    for (const auto& [k, v] : run.settings) p.argv.insert(p.argv.end(), {"--" + k, v});
    p.argv.insert(p.argv.end(), {"--run-dir", run.dir});
    p.run = std::move(run);
    queue.push_back(std::move(p));
  }
  if (options.dry_run) {
    for (const auto& p : queue) {
      std::string line;
      for (const auto& a : p.argv) line += (line.empty() ? "" : " ") + a;
      result.planned.push_back(line);
    }
    return result;
  }

  struct Running {
    pid_t pid;
    std::string name;
    std::string dir;
    std::chrono::steady_clock::time_point started;
  };
  std::vector<Running> running;
  std::size_t next = 0;
  const fs::path log_dir = fs::path(spec.out_dir) / "logs";

  // Progress: runs done / total, elapsed, and time left from the pace of this invocation.
  using Clock = std::chrono::steady_clock;
  const auto sweep_start = Clock::now();
  auto last_line = sweep_start;
  const std::size_t total = result.skipped.size() + queue.size();
  std::size_t ended = 0;  // runs of `queue` that completed or failed
  const auto seconds_since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  const auto say = [&](const std::string& line) {
    last_line = Clock::now();
    if (options.progress == nullptr) return;
    const double elapsed = seconds_since(sweep_start);
    std::string where = std::to_string(result.skipped.size() + ended) + "/" + std::to_string(total) +
                        " done, elapsed " + duration_text(elapsed);
    if (ended > 0 && ended < queue.size()) {
      const double left = elapsed / static_cast<double>(ended) * static_cast<double>(queue.size() - ended);
      where += ", about " + duration_text(left) + " left";
    }
    *options.progress << "sweep [" << where << "] " << line << std::endl;
  };
  const auto fail = [&](const std::string& reason) {
    result.failed.push_back(reason);
    ++ended;
    say("FAILED " + reason);
  };
  if (!result.skipped.empty()) say(std::to_string(result.skipped.size()) + " runs already finished, skipped");

  auto start = [&](const Pending& p) {
    // An unfinished directory is what a failed or interrupted attempt left: start clean
    // (the run writes its own directory; `gradzip train` refuses a non-empty one).
    fs::remove_all(p.run.dir, ec);
    fs::create_directories(log_dir, ec);
    if (ec) return fail(p.run.name + ": cannot prepare " + log_dir.string() + ": " + ec.message());
    {
      std::ofstream cmd(log_dir / (p.run.name + ".cmd"));
      for (const auto& a : p.argv) cmd << a << "\n";
    }
    const std::string log = (log_dir / (p.run.name + ".log")).string();
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return fail(p.run.name + ": cannot open " + log);
    std::vector<char*> args;
    for (const auto& a : p.argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);  // own process group: a timeout kills the run and its children
      dup2(fd, 1);
      dup2(fd, 2);
      execvp(args[0], args.data());
      _exit(127);
    }
    ::close(fd);
    if (pid < 0) return fail(p.run.name + ": fork failed");
    running.push_back({pid, p.run.name, p.run.dir, Clock::now()});
    say("started " + p.run.name);
  };

  while (next < queue.size() || !running.empty()) {
    while (next < queue.size() && static_cast<int>(running.size()) < spec.parallel) start(queue[next++]);
    bool reaped = false;
    for (auto it = running.begin(); it != running.end();) {
      int status = 0;
      const pid_t w = waitpid(it->pid, &status, WNOHANG);
      const double age = std::chrono::duration<double>(std::chrono::steady_clock::now() - it->started).count();
      if (w == it->pid) {
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
          result.completed.push_back(it->name);
          ++ended;
          const std::string outcome = run_result_line(it->dir);
          say("completed " + it->name + " in " + duration_text(age) + (outcome.empty() ? "" : ": " + outcome));
        } else if (WIFEXITED(status)) {
          fail(it->name + ": exit status " + std::to_string(WEXITSTATUS(status)) +
               (WEXITSTATUS(status) == 127 ? " (command not found)" : "") + "; see logs/" + it->name + ".log");
        } else {
          fail(it->name + ": killed by signal " + std::to_string(WTERMSIG(status)));
        }
        it = running.erase(it);
        reaped = true;
      } else if (age > spec.run_timeout_s) {
        ::kill(-it->pid, SIGKILL);
        ::kill(it->pid, SIGKILL);
        waitpid(it->pid, &status, 0);
        fail(it->name + ": timed out after " + std::to_string(spec.run_timeout_s) + " s");
        it = running.erase(it);
        reaped = true;
      } else {
        ++it;
      }
    }
    if (!running.empty() && seconds_since(last_line) >= options.heartbeat_s) {
      std::string names;
      for (const auto& r : running) {
        names += (names.empty() ? "" : ", ") + r.name + " (" + duration_text(seconds_since(r.started)) + ")";
      }
      say("still running: " + names);
    }
    if (!reaped) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return result;
}

}  // namespace gradzip::experiments
