// Typed errors of the trainer: bad data files and bad settings. Both carry a message a
// person can act on (the file and what is wrong with it, or the setting and what is
// allowed); the CLI prints them and exits non-zero, nothing aborts.
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

}  // namespace gradzip::trainer
