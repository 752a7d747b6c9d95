// Build and host facts for run directories (see hostinfo.h).
#include "experiments/runlog/hostinfo.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#ifndef GRADZIP_VERSION
#define GRADZIP_VERSION "unknown"
#endif
#ifndef GRADZIP_GIT_REVISION
#define GRADZIP_GIT_REVISION "unknown"
#endif
#ifndef GRADZIP_CUDA_ENABLED
#define GRADZIP_CUDA_ENABLED 0
#endif
#ifndef GRADZIP_CUDA_VERSION
#define GRADZIP_CUDA_VERSION ""
#endif
#ifndef GRADZIP_NCCL_ENABLED
#define GRADZIP_NCCL_ENABLED 0
#endif

namespace gradzip::runlog {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

/// Value after the first "key:" line of a /proc-style file, or "".
std::string field_of(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (trim(line.substr(0, colon)) == key) return trim(line.substr(colon + 1));
  }
  return "";
}

}  // namespace

BuildInfo build_info() {
  BuildInfo b;
  b.version = GRADZIP_VERSION;
  b.git_revision = GRADZIP_GIT_REVISION;
#if defined(__clang__)
  b.compiler = "Clang " __clang_version__;
#elif defined(__GNUC__)
  b.compiler = "GCC " __VERSION__;
#else
  b.compiler = "unknown";
#endif
#ifdef NDEBUG
  b.build_type = "optimized";
#else
  b.build_type = "debug";
#endif
  b.cuda_enabled = GRADZIP_CUDA_ENABLED != 0;
  b.cuda_version = b.cuda_enabled ? GRADZIP_CUDA_VERSION : "";
  b.nccl_enabled = GRADZIP_NCCL_ENABLED != 0;
  return b;
}

HostInfo host_info() {
  HostInfo h;
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) == 0) h.hostname = name;
  struct utsname u {};
  if (uname(&u) == 0) h.os = std::string(u.sysname) + " " + u.release + " " + u.machine;
  h.cpu_model = field_of("/proc/cpuinfo", "model name");
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  h.logical_cores = cores > 0 ? static_cast<unsigned>(cores) : 0;
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page_size > 0) h.memory_bytes = static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size);
  std::error_code ec;
  const std::filesystem::path gpus("/proc/driver/nvidia/gpus");
  if (std::filesystem::is_directory(gpus, ec)) {
    for (const auto& entry : std::filesystem::directory_iterator(gpus, ec)) {
      const std::string model = field_of((entry.path() / "information").string(), "Model");
      if (!model.empty()) h.gpu_names.push_back(model);
    }
    std::sort(h.gpu_names.begin(), h.gpu_names.end());
  }
  return h;
}

nlohmann::json host_json(const BuildInfo& build, const HostInfo& host, const std::string& torch_version) {
  nlohmann::json j;
  j["build"] = {{"version", build.version},
                {"git_revision", build.git_revision},
                {"compiler", build.compiler},
                {"build_type", build.build_type},
                {"cuda_enabled", build.cuda_enabled},
                {"cuda_version", build.cuda_version},
                {"nccl_enabled", build.nccl_enabled}};
  j["host"] = {{"hostname", host.hostname},
               {"os", host.os},
               {"cpu_model", host.cpu_model},
               {"logical_cores", host.logical_cores},
               {"memory_bytes", host.memory_bytes},
               {"gpu_names", host.gpu_names}};
  j["torch_version"] = torch_version;
  return j;
}

}  // namespace gradzip::runlog
