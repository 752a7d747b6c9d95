// Helpers shared by the fuzz harnesses: guarded output buffers and scratch files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gradzip::fuzz {

/// n floats, every element set to the bit pattern `fill_bits`, between two guard zones.
/// Under AddressSanitizer the guards are poisoned, so a write or read outside [0, n)
/// traps at once; in other builds they hold a canary that check_guards() verifies.
class GuardedFloats {
 public:
  GuardedFloats(std::size_t n, std::uint32_t fill_bits);
  ~GuardedFloats();
  GuardedFloats(const GuardedFloats&) = delete;
  GuardedFloats& operator=(const GuardedFloats&) = delete;

  float* data() { return storage_.data() + kGuard; }
  std::size_t size() const { return n_; }
  float operator[](std::size_t i) const { return storage_[kGuard + i]; }
  /// The bit patterns of the n elements.
  std::vector<std::uint32_t> bits() const;
  /// True when every element still holds `fill_bits`.
  bool untouched() const;
  /// Throws PropertyViolation when a guard zone was written (non-ASan builds).
  void check_guards(const std::string& who) const;

 private:
  static constexpr std::size_t kGuard = 16;
  std::size_t n_;
  std::uint32_t fill_bits_;
  std::vector<float> storage_;
};

/// True when a and b hold the same bit patterns (same size).
bool same_bits(const GuardedFloats& a, const GuardedFloats& b);
/// Index of the first element where a and b differ as values (NaN equals NaN, 0 equals
/// -0); a.size() when none does. Same size.
std::size_t first_value_difference(const GuardedFloats& a, const GuardedFloats& b);

/// A file for parsers that take a path, rewritten by each write(): an in-memory file
/// (memfd_create, path /proc/self/fd/N), or where that fails a file under $TMPDIR (or
/// /tmp) named after the process id and `tag`, removed by the destructor. Not copyable.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& tag);
  ~ScratchFile();
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  /// Replaces the file's contents. Throws std::runtime_error when it cannot be written.
  void write(const std::uint8_t* data, std::size_t size);
  void write(const std::string& text);
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

/// Whole contents of a file; throws std::runtime_error when it cannot be read.
std::vector<std::uint8_t> read_file(const std::string& path);
/// Creates parent folders and writes `bytes`; throws std::runtime_error on failure.
void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes);

}  // namespace gradzip::fuzz
