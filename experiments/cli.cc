// Option plumbing for the gradzip CLI (see cli.h). Every value travels through Boost as
// a string and is converted here, so each bad value gets the same kind of message:
// "bad value 'abc' for --lr: expected a real number".
#include "experiments/cli.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <system_error>

namespace po = boost::program_options;

namespace gradzip::cli {

struct OptionTable::Binding {
  std::string name;
  std::string help;
  std::string group;
  std::string value_name;  ///< placeholder in --help ("N", "X", "TEXT", "a|b")
  std::string default_text;
  bool is_flag = false;    ///< `--name` alone means true
  std::function<void(const std::string&)> set;  ///< throws UsageError (without the option name)
  std::function<std::string()> get;
};

struct OptionTable::Impl {
  std::vector<Binding> bindings;
  std::vector<std::string> groups;  ///< in order of first appearance
  std::string current_group = "Options";
  std::vector<std::function<void()>> checks;
};

namespace {

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

std::string format_real(double v) {
  // Shortest text that reads back to the same double (round trip for --print-config).
  for (int precision = 6; precision <= 17; ++precision) {
    std::ostringstream os;
    os.precision(precision);
    os << v;
    if (std::strtod(os.str().c_str(), nullptr) == v) return os.str();
  }
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

std::string format_range(const Range& r, bool integer) {
  auto fmt = [integer](double v) {
    return integer ? std::to_string(static_cast<long long>(v)) : format_real(v);
  };
  if (r.hi >= 9.0e18) return "[>= " + fmt(r.lo) + "]";
  return "[" + fmt(r.lo) + ", " + fmt(r.hi) + "]";
}

bool range_is_unbounded(const Range& r) { return r.lo <= -9.0e18 && r.hi >= 9.0e18; }

double parse_real(const std::string& text) {
  const std::string t = trim(text);
  if (t.empty()) throw UsageError("expected a real number, got an empty value");
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) throw UsageError("expected a real number");
  if (errno == ERANGE || !std::isfinite(v)) throw UsageError("expected a finite real number");
  return v;
}

long long parse_signed(const std::string& text) {
  const std::string t = trim(text);
  if (t.empty()) throw UsageError("expected an integer, got an empty value");
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(t.c_str(), &end, 10);
  if (end != t.c_str() + t.size()) throw UsageError("expected an integer");
  if (errno == ERANGE) throw UsageError("integer out of range");
  return v;
}

unsigned long long parse_unsigned(const std::string& text) {
  const std::string t = trim(text);
  if (t.empty()) throw UsageError("expected a non-negative integer, got an empty value");
  if (t[0] == '-') throw UsageError("expected a non-negative integer");
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(t.c_str(), &end, 10);
  if (end != t.c_str() + t.size()) throw UsageError("expected a non-negative integer");
  if (errno == ERANGE) throw UsageError("integer out of range");
  return v;
}

bool parse_bool(const std::string& text) {
  const std::string t = trim(text);
  if (t == "true" || t == "1" || t == "yes" || t == "on") return true;
  if (t == "false" || t == "0" || t == "no" || t == "off") return false;
  throw UsageError("expected true|false (also 1|0, yes|no, on|off)");
}

void check_range(double v, const Range& r, bool integer) {
  if (v < r.lo || v > r.hi) throw UsageError("out of range, allowed " + format_range(r, integer));
}

std::string join(const std::vector<std::string>& words, const char* sep) {
  std::string s;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i) s += sep;
    s += words[i];
  }
  return s;
}

std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

/// One line describing a Boost.PO error about `input` (the arguments or config lines).
/// Boost builds what() by replacing placeholders such as %canonical_option% with the
/// user's tokens until none is left, which never ends when a token holds a placeholder
/// itself (found by fuzzing: `--x%canonical_option%` hung the CLI). With a '%' in the
/// input, the message is built from the option name instead.
std::string po_message(const po::error& e, const std::string& input) {
  if (input.find('%') == std::string::npos) return first_line(e.what());
  if (const auto* named = dynamic_cast<const po::error_with_option_name*>(&e)) {
    return "unrecognised or malformed option '" + first_line(named->get_option_name()) + "'";
  }
  return "malformed options";
}

}  // namespace

OptionTable::OptionTable(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)), impl_(std::make_unique<Impl>()) {}

OptionTable::~OptionTable() = default;

void OptionTable::group(const std::string& title) { impl_->current_group = title; }

void OptionTable::add_binding(Binding binding) {
  for (const auto& b : impl_->bindings) {
    if (b.name == binding.name) throw std::logic_error("gradzip cli: option --" + binding.name + " bound twice");
  }
  if (binding.name == "help" || binding.name == "config" || binding.name == "print-config") {
    throw std::logic_error("gradzip cli: option --" + binding.name + " is reserved");
  }
  binding.group = impl_->current_group;
  bool known = false;
  for (const auto& g : impl_->groups) known = known || g == binding.group;
  if (!known) impl_->groups.push_back(binding.group);
  impl_->bindings.push_back(std::move(binding));
}

void OptionTable::add(const std::string& name, std::string* field, const std::string& help) {
  Binding b;
  b.name = name;
  b.help = help;
  b.value_name = "TEXT";
  b.default_text = *field;
  b.set = [field](const std::string& v) { *field = trim(v); };
  b.get = [field] { return *field; };
  add_binding(std::move(b));
}

void OptionTable::add(const std::string& name, bool* field, const std::string& help) {
  Binding b;
  b.name = name;
  b.help = help;
  b.value_name = "BOOL";
  b.default_text = *field ? "true" : "false";
  b.is_flag = true;
  b.set = [field](const std::string& v) { *field = parse_bool(v); };
  b.get = [field] { return std::string(*field ? "true" : "false"); };
  add_binding(std::move(b));
}

void OptionTable::add(const std::string& name, int* field, const std::string& help, Range range) {
  Binding b;
  b.name = name;
  b.help = help;
  b.value_name = "N";
  b.default_text = std::to_string(*field);
  if (!(range.lo <= -2.1e9 && range.hi >= 2.1e9)) b.help += " " + format_range(range, true);
  b.set = [field, range](const std::string& v) {
    const long long x = parse_signed(v);
    if (x < -2147483648LL || x > 2147483647LL) throw UsageError("integer out of range");
    check_range(static_cast<double>(x), range, true);
    *field = static_cast<int>(x);
  };
  b.get = [field] { return std::to_string(*field); };
  add_binding(std::move(b));
}

void OptionTable::add(const std::string& name, std::int64_t* field, const std::string& help, Range range) {
  Binding b;
  b.name = name;
  b.help = help;
  b.value_name = "N";
  b.default_text = std::to_string(*field);
  if (!range_is_unbounded(range)) b.help += " " + format_range(range, true);
  b.set = [field, range](const std::string& v) {
    const long long x = parse_signed(v);
    check_range(static_cast<double>(x), range, true);
    *field = static_cast<std::int64_t>(x);
  };
  b.get = [field] { return std::to_string(*field); };
  add_binding(std::move(b));
}

void OptionTable::add(const std::string& name, std::uint64_t* field, const std::string& help, Range range) {
  Binding b;
  b.name = name;
  b.help = help;
  b.value_name = "N";
  b.default_text = std::to_string(*field);
  if (!(range.lo <= 0.0 && range.hi >= 1.8e19)) b.help += " " + format_range(range, true);
  b.set = [field, range](const std::string& v) {
    const unsigned long long x = parse_unsigned(v);
    check_range(static_cast<double>(x), range, true);
    *field = static_cast<std::uint64_t>(x);
  };
  b.get = [field] { return std::to_string(*field); };
  add_binding(std::move(b));
}

void OptionTable::add(const std::string& name, double* field, const std::string& help, Range range) {
  Binding b;
  b.name = name;
  b.help = help;
  b.value_name = "X";
  b.default_text = format_real(*field);
  if (!(range.lo <= -1.0e307 && range.hi >= 1.0e307)) b.help += " " + format_range(range, false);
  b.set = [field, range](const std::string& v) {
    const double x = parse_real(v);
    check_range(x, range, false);
    *field = x;
  };
  b.get = [field] { return format_real(*field); };
  add_binding(std::move(b));
}

void OptionTable::add_choice(const std::string& name, std::string* field, std::vector<std::string> allowed,
                             const std::string& help) {
  add_custom(
      name, help, *field, allowed, [field](const std::string& v) { *field = v; }, [field] { return *field; });
}

void OptionTable::add_custom(const std::string& name, const std::string& help, const std::string& default_text,
                             std::vector<std::string> allowed, std::function<void(const std::string&)> set,
                             std::function<std::string()> get) {
  Binding b;
  b.name = name;
  b.help = help;
  b.value_name = join(allowed, "|");
  b.default_text = default_text;
  b.set = [allowed, set = std::move(set)](const std::string& raw) {
    const std::string v = trim(raw);
    for (const auto& a : allowed) {
      if (a == v) {
        set(v);
        return;
      }
    }
    throw UsageError("allowed values are " + join(allowed, ", "));
  };
  b.get = std::move(get);
  add_binding(std::move(b));
}

void OptionTable::add_check(std::function<void()> check) { impl_->checks.push_back(std::move(check)); }

namespace {

// Options every command understands.
void add_common(po::options_description* d) {
  d->add_options()("help,h", "print this help and exit")(
      "config", po::value<std::string>()->value_name("FILE"),
      "read options from an INI file (command-line options override it)")(
      "print-config", "print the resolved configuration as INI and exit");
}

}  // namespace

std::string OptionTable::help() const {
  std::ostringstream os;
  os << "usage: gradzip " << command_ << " [options]\n" << summary_ << "\n\n";
  // Formatted here rather than by Boost so that every group shares one column width.
  struct Row {
    std::string left;
    std::string text;
  };
  std::vector<std::pair<std::string, std::vector<Row>>> sections;
  sections.push_back({"General",
                      {{"-h, --help", "print this help and exit"},
                       {"--config FILE", "read options from an INI file (command-line options override it)"},
                       {"--print-config", "print the resolved configuration as INI and exit"}}});
  for (const auto& g : impl_->groups) {
    std::vector<Row> rows;
    for (const auto& b : impl_->bindings) {
      if (b.group != g) continue;
      std::string text = b.help;
      text += b.default_text.empty() ? " (default: empty)" : " (default: " + b.default_text + ")";
      rows.push_back({"--" + b.name + " " + (b.is_flag ? "[" + b.value_name + "]" : b.value_name), text});
    }
    sections.emplace_back(g, std::move(rows));
  }
  std::size_t width = 0;
  for (const auto& sec : sections) {
    for (const auto& r : sec.second) width = std::max(width, r.left.size());
  }
  width = std::min<std::size_t>(width, 34);
  const std::size_t text_width = 100 - 4 - width;
  for (const auto& sec : sections) {
    os << sec.first << ":\n";
    for (const auto& r : sec.second) {
      os << "  " << r.left;
      std::size_t col = r.left.size();
      if (col > width) {
        os << "\n";
        col = 0;
      }
      // Greedy word wrap of the description into the right-hand column.
      std::istringstream words(r.text);
      std::string word;
      std::size_t used = 0;
      os << std::string(width - col + 2, ' ');
      while (words >> word) {
        if (used > 0 && used + 1 + word.size() > text_width) {
          os << "\n" << std::string(width + 4, ' ');
          used = 0;
        } else if (used > 0) {
          os << ' ';
          ++used;
        }
        os << word;
        used += word.size();
      }
      os << "\n";
    }
    os << "\n";
  }
  os << "Precedence: command line > --config FILE > defaults. Config keys are the option names\n"
        "without '--'; a file may hold [" << command_ << "], [common] and other commands' sections.\n";
  return os.str();
}

std::vector<std::pair<std::string, std::string>> OptionTable::values() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& b : impl_->bindings) out.emplace_back(b.name, b.get());
  return out;
}

std::string OptionTable::to_ini(const std::string& section) const {
  std::ostringstream os;
  os << "# gradzip " << command_ << ": resolved configuration\n[" << (section.empty() ? command_ : section) << "]\n";
  for (const auto& g : impl_->groups) {
    os << "\n# " << g << "\n";
    for (const auto& b : impl_->bindings) {
      if (b.group != g) continue;
      const std::string v = b.get();
      os << b.name << " =" << (v.empty() ? "" : " " + v) << "\n";
    }
  }
  return os.str();
}

std::string read_config_file(const std::string& path, const std::string& command) {
  std::ifstream in(path);
  if (!in) {
    const std::error_code ec(errno, std::generic_category());
    throw UsageError("cannot read config file '" + path + "': " + ec.message());
  }
  std::ostringstream kept;
  bool applies = true;  // keys before any section header apply
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[') {
      if (t.back() != ']' || t.size() < 3) {
        throw UsageError("config file '" + path + "' line " + std::to_string(line_no) + ": bad section header '" +
                         t + "'");
      }
      const std::string section = trim(t.substr(1, t.size() - 2));
      applies = section == command || section == "common";
      continue;
    }
    if (t.find('=') == std::string::npos || trim(t.substr(0, t.find('='))).empty()) {
      throw UsageError("config file '" + path + "' line " + std::to_string(line_no) +
                       ": expected 'key = value', got '" + t + "'");
    }
    if (applies) kept << t << "\n";
  }
  if (in.bad()) throw UsageError("cannot read config file '" + path + "': I/O error");
  return kept.str();
}

ParseOutcome OptionTable::parse(int argc, const char* const* argv, std::ostream& out) {
  po::options_description cmdline;
  add_common(&cmdline);
  po::options_description file_keys;
  for (const auto& b : impl_->bindings) {
    auto* sem = po::value<std::string>();
    if (b.is_flag) sem->implicit_value("true");
    cmdline.add_options()(b.name.c_str(), sem, "");
    file_keys.add_options()(b.name.c_str(), po::value<std::string>(), "");
  }

  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);

  po::variables_map vm;
  try {
    const po::parsed_options parsed =
        po::command_line_parser(args)
            .options(cmdline)
            .style(po::command_line_style::unix_style ^ po::command_line_style::allow_guessing)
            .run();
    const auto stray = po::collect_unrecognized(parsed.options, po::include_positional);
    if (!stray.empty()) {
      throw UsageError("unexpected argument '" + stray.front() + "' (see 'gradzip " + command_ + " --help')");
    }
    po::store(parsed, vm);
  } catch (const po::error& e) {
    std::string input;
    for (const auto& a : args) input += a + "\n";
    throw UsageError(po_message(e, input) + " (see 'gradzip " + command_ + " --help')");
  }
  if (vm.count("help")) {
    out << help();
    return ParseOutcome::kHelpShown;
  }
  if (vm.count("config")) {
    const std::string path = vm["config"].as<std::string>();
    const std::string kept_lines = read_config_file(path, command_);
    std::istringstream kept(kept_lines);
    try {
      po::store(po::parse_config_file(kept, file_keys, /*allow_unregistered=*/false), vm);
    } catch (const po::error& e) {
      throw UsageError("config file '" + path + "': " + po_message(e, kept_lines));
    }
  }
  for (const auto& b : impl_->bindings) {
    if (!vm.count(b.name)) continue;
    const std::string raw = vm[b.name].as<std::string>();
    try {
      b.set(raw);
    } catch (const UsageError& e) {
      throw UsageError("bad value '" + raw + "' for --" + b.name + ": " + e.what());
    }
  }
  for (const auto& check : impl_->checks) check();
  if (vm.count("print-config")) {
    out << to_ini();
    return ParseOutcome::kConfigShown;
  }
  return ParseOutcome::kRun;
}

int run_command(OptionTable& table, int argc, const char* const* argv, const std::function<int()>& body) {
  const std::string prefix = "gradzip " + table.command() + ": ";
  try {
    if (table.parse(argc, argv, std::cout) != ParseOutcome::kRun) return kExitOk;
  } catch (const UsageError& e) {
    std::cerr << prefix << e.what() << "\n";
    return kExitUsage;
  }
  try {
    return body();
  } catch (const UsageError& e) {
    std::cerr << prefix << e.what() << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << prefix << "error: " << e.what() << "\n";
    return kExitFailure;
  }
}

int not_implemented(const std::string& command) {
  std::cerr << "gradzip " << command << ": not implemented yet\n";
  return kExitNotImplemented;
}

}  // namespace gradzip::cli
