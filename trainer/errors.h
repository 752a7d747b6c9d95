// Typed errors of the trainer: bad data files, bad settings, failures in a worker's
// gradient pipeline. Each carries a message a person can act on (the file and what is
// wrong with it, the setting and what is allowed, the step and bucket); the CLI prints
// them and exits non-zero, nothing aborts.
#pragma once

#include <stdexcept>
#include <string>

namespace gradzip::trainer {

/// A data file that is missing, truncated, corrupt or does not match its companion
/// (e.g. an IDX image file and a label file of different lengths). `path()` names the file.
class DataError : public std::runtime_error {
 public:
  DataError(const std::string& path, const std::string& problem)
      : std::runtime_error(path + ": " + problem), path_(path) {}
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

/// A TrainConfig value that is out of range or inconsistent (unknown model, zero batch...).
class ConfigError : public std::invalid_argument {
 public:
  explicit ConfigError(const std::string& what) : std::invalid_argument(what) {}
};

/// A failure inside a worker's gradient pipeline: an autograd gradient hook, a bucket's
/// encode, or the pipeline's communication thread. `stage()` says which; the run stops
/// (every thread of the worker is joined) and the error reaches the caller. Transport
/// failures keep their own type (comm::CommError).
class PipelineError : public std::runtime_error {
 public:
  enum class Stage { kHook, kEncode, kSchedule };
  PipelineError(Stage stage, const std::string& what) : std::runtime_error(what), stage_(stage) {}
  Stage stage() const noexcept { return stage_; }

 private:
  Stage stage_;
};

}  // namespace gradzip::trainer
