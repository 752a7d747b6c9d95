#include "tests/fuzz/util.h"

#include <sanitizer/asan_interface.h>  // ASAN_(UN)POISON_MEMORY_REGION: no-ops without ASan
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "tests/fuzz/harness.h"

// Whether this build runs under AddressSanitizer (gcc defines the macro, clang the feature).
#if defined(__SANITIZE_ADDRESS__)
#define GRADZIP_FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GRADZIP_FUZZ_ASAN 1
#endif
#endif

namespace gradzip::fuzz {
namespace {
constexpr std::uint32_t kCanaryBits = 0xFFBADBADu;  // a NaN no decoder produces by arithmetic

std::uint32_t bits_of(float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}
float from_bits(std::uint32_t u) {
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}
}  // namespace

GuardedFloats::GuardedFloats(std::size_t n, std::uint32_t fill_bits)
    : n_(n), fill_bits_(fill_bits), storage_(n + 2 * kGuard, from_bits(kCanaryBits)) {
  for (std::size_t i = 0; i < n; ++i) storage_[kGuard + i] = from_bits(fill_bits);
  ASAN_POISON_MEMORY_REGION(storage_.data(), kGuard * sizeof(float));
  ASAN_POISON_MEMORY_REGION(storage_.data() + kGuard + n, kGuard * sizeof(float));
}

GuardedFloats::~GuardedFloats() { ASAN_UNPOISON_MEMORY_REGION(storage_.data(), storage_.size() * sizeof(float)); }

std::vector<std::uint32_t> GuardedFloats::bits() const {
  std::vector<std::uint32_t> out(n_);
  for (std::size_t i = 0; i < n_; ++i) out[i] = bits_of(storage_[kGuard + i]);
  return out;
}

bool GuardedFloats::untouched() const {
  for (std::size_t i = 0; i < n_; ++i) {
    if (bits_of(storage_[kGuard + i]) != fill_bits_) return false;
  }
  return true;
}

void GuardedFloats::check_guards(const std::string& who) const {
#ifndef GRADZIP_FUZZ_ASAN
  for (std::size_t i = 0; i < kGuard; ++i) {
    GRADZIP_FUZZ_REQUIRE(bits_of(storage_[i]) == kCanaryBits && bits_of(storage_[kGuard + n_ + i]) == kCanaryBits,
            who + " wrote outside its output buffer");
  }
#else
  (void)who;  // ASan traps the first access to a poisoned guard
#endif
}

bool same_bits(const GuardedFloats& a, const GuardedFloats& b) { return a.bits() == b.bits(); }

std::size_t first_value_difference(const GuardedFloats& a, const GuardedFloats& b) {
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return i;
  }
  return a.size();
}

ScratchFile::ScratchFile(const std::string& tag) {
  // An in-memory file (memfd) reached through /proc/self/fd: rewriting a disk file
  // millions of times would make the harness wait on the file system.
  fd_ = ::memfd_create(("gradzip-fuzz-" + tag).c_str(), MFD_CLOEXEC);
  if (fd_ >= 0) {
    path_ = "/proc/self/fd/" + std::to_string(fd_);
    return;
  }
  const char* tmp = std::getenv("TMPDIR");
  path_ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/gradzip-fuzz-" +
          std::to_string(::getpid()) + "-" + tag;
}

ScratchFile::~ScratchFile() {
  if (fd_ >= 0) {
    ::close(fd_);
  } else {
    std::remove(path_.c_str());
  }
}

void ScratchFile::write(const std::uint8_t* data, std::size_t size) {
  if (fd_ >= 0) {
    std::size_t done = 0;
    bool ok = ::ftruncate(fd_, 0) == 0;
    while (ok && done < size) {
      const ssize_t n = ::pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
      ok = n > 0;
      if (ok) done += static_cast<std::size_t>(n);
    }
    if (!ok) throw std::runtime_error("cannot write scratch file " + path_);
    return;
  }
  std::FILE* f = std::fopen(path_.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("cannot write scratch file " + path_);
  const bool ok = (size == 0 || std::fwrite(data, 1, size, f) == size);
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) throw std::runtime_error("cannot write scratch file " + path_);
}

void ScratchFile::write(const std::string& text) {
  write(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
}

std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace gradzip::fuzz
