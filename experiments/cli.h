// Shared option plumbing for every `gradzip <command>`: binds command-line options and
// INI config-file keys to the fields of one plain options struct, prints help and the
// resolved configuration, and turns every user mistake into one line on stderr and
// exit code 2.
//
// A command file (experiments/cmd_<name>.cc) does:
//
//   int cmd_train(int argc, char** argv) {
//     TrainOptions opt;                              // plain struct, defaults in-class
//     cli::OptionTable table("train", "Train a model with compressed gradients.");
//     bind_train_options(&table, &opt);              // table.add("lr", &opt.optim.lr, ...)
//     return cli::run_command(table, argc, argv, [&] { return run_train(opt); });
//   }
//
// Precedence: command line > config file (--config FILE) > the struct's defaults.
// Config files are INI: `key = value` lines, `#`/`;` comments, and optional
// `[section]` headers. Keys before any header and keys under `[<command>]` or
// `[common]` apply; other sections are skipped, so one file can configure
// `train`, `ps` and `worker` together. Unknown keys in an applying section are errors.
//
// Boost.Program_options is an implementation detail (cli.cc); this header and the
// options structs stay Boost-free. Not thread-safe: build and parse on one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace gradzip::cli {

/// Process exit codes of the `gradzip` executable.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,         ///< the command ran and failed (I/O, training diverged, ...)
  kExitUsage = 2,           ///< unknown option, bad value, missing/unreadable config file
  kExitNotImplemented = 3,  ///< the command exists but has no body yet
};

/// A user mistake on the command line or in a config file. The message is one line
/// without the "gradzip <cmd>: " prefix; run_command adds it and exits kExitUsage.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Inclusive numeric range for an option; a value outside is a UsageError.
struct Range {
  double lo;
  double hi;
};

/// What parse() found the user asked for.
enum class ParseOutcome {
  kRun,          ///< options filled; run the command body
  kHelpShown,    ///< --help printed; exit 0
  kConfigShown,  ///< --print-config printed; exit 0
};

/// The options of one command, bound to fields of a caller-owned struct. The table
/// stores raw pointers to those fields: the struct must outlive the table.
class OptionTable {
 public:
  /// `command` is the sub-command name ("train"); `summary` is one line for --help.
  OptionTable(std::string command, std::string summary);
  ~OptionTable();
  OptionTable(const OptionTable&) = delete;
  OptionTable& operator=(const OptionTable&) = delete;

  const std::string& command() const { return command_; }
  const std::string& summary() const { return summary_; }

  /// Starts a new group: following options are listed under `title` in --help and as a
  /// comment block in --print-config.
  void group(const std::string& title);

  /// Binds option `--name` (and config key `name`) to a field. The field's current
  /// value is the default shown in --help. `help` says what it is, with units.
  /// Names use lower-case words joined by '-' ("batch-size").
  void add(const std::string& name, std::string* field, const std::string& help);
  void add(const std::string& name, bool* field, const std::string& help);  ///< --name alone means true
  void add(const std::string& name, int* field, const std::string& help, Range range = kAnyInt);
  void add(const std::string& name, std::int64_t* field, const std::string& help, Range range = kAnyInt);
  void add(const std::string& name, std::uint64_t* field, const std::string& help, Range range = kAnyUnsigned);
  void add(const std::string& name, double* field, const std::string& help, Range range = kAnyReal);

  /// A string restricted to `allowed` (exact match). A bad value names the allowed set.
  void add_choice(const std::string& name, std::string* field, std::vector<std::string> allowed,
                  const std::string& help);

  /// An enum field spelled by names: `names` maps each allowed word to a value.
  template <class E>
  void add_enum(const std::string& name, E* field, std::vector<std::pair<std::string, E>> names,
                const std::string& help) {
    std::vector<std::string> words;
    std::string current;
    for (const auto& kv : names) {
      words.push_back(kv.first);
      if (kv.second == *field) current = kv.first;
    }
    add_custom(
        name, help, current, words,
        [field, names](const std::string& v) {
          for (const auto& kv : names) {
            if (kv.first == v) {
              *field = kv.second;
              return;
            }
          }
        },
        [field, names]() {
          for (const auto& kv : names) {
            if (kv.second == *field) return kv.first;
          }
          return std::string("?");
        });
  }

  /// A check run after every option is filled (cross-option rules, e.g. "--slack needs
  /// --mode ssp"); it throws UsageError. Several may be added; they run in order.
  void add_check(std::function<void()> check);

  /// Parses argv (argv[0] is the command name, e.g. "train"; options follow). Fills the
  /// bound fields, runs the checks, and handles --help / --print-config, which write to
  /// `out`. Throws UsageError on any user mistake.
  ParseOutcome parse(int argc, const char* const* argv, std::ostream& out);

  /// Help text: usage line, summary and every option with default and allowed values.
  std::string help() const;
  /// The resolved configuration as INI: a `[<command>]` header and one `key = value` per
  /// option, grouped with comments. Feeding it back with --config reproduces it exactly.
  /// `section` names the INI section header (default: this command), e.g. "train" so that
  /// a run directory's config.ini written by `launch` or `ps` re-runs with `gradzip train`.
  std::string to_ini(const std::string& section = "") const;
  /// The resolved configuration as (key, value) pairs, in declaration order.
  std::vector<std::pair<std::string, std::string>> values() const;

  /// Range that accepts any value of the type.
  static constexpr Range kAnyInt{-9.2e18, 9.2e18};
  static constexpr Range kAnyUnsigned{0.0, 2.0e19};
  static constexpr Range kAnyReal{-1.0e308, 1.0e308};

 private:
  struct Binding;
  struct Impl;

  void add_custom(const std::string& name, const std::string& help, const std::string& default_text,
                  std::vector<std::string> allowed, std::function<void(const std::string&)> set,
                  std::function<std::string()> get);
  void add_binding(Binding binding);

  std::string command_;
  std::string summary_;
  std::unique_ptr<Impl> impl_;
};

/// Parses with `table` and runs `body` when asked to. Maps errors to exit codes:
/// UsageError -> one line "gradzip <cmd>: <message>" on stderr, kExitUsage; any other
/// std::exception from the body -> "gradzip <cmd>: error: <what>", kExitFailure.
/// Returns the exit code (body's result on success).
int run_command(OptionTable& table, int argc, const char* const* argv, const std::function<int()>& body);

/// Body for a command that exists but is not implemented yet: prints
/// "gradzip <cmd>: not implemented yet" to stderr and returns kExitNotImplemented.
int not_implemented(const std::string& command);

/// Reads an INI config file and keeps the lines that apply to `command` (see the file
/// comment), with section headers removed. Throws UsageError when the file cannot be
/// read or a line is neither a comment, a header nor `key = value`.
std::string read_config_file(const std::string& path, const std::string& command);

}  // namespace gradzip::cli
