// Facts about this build and this machine, recorded in every run directory (host.json)
// and printed by `gradzip version`, so a result can be traced to the code and hardware
// that produced it. No torch, no CUDA runtime: the torch version is passed in by the
// caller, GPU names are read from the NVIDIA driver's /proc files when present.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gradzip::runlog {

/// Compile-time facts about this gradzip build.
struct BuildInfo {
  std::string version;        ///< project version, e.g. "0.1.0"
  std::string git_revision;   ///< short hash at configure time, or "unknown"
  std::string compiler;       ///< e.g. "GCC 12.2.0"
  std::string build_type;     ///< "optimized" or "debug" (from NDEBUG)
  bool cuda_enabled = false;  ///< CUDA twins compiled in (GRADZIP_CUDA)
  std::string cuda_version;   ///< CUDA toolkit version compiled against, empty when off
  bool nccl_enabled = false;  ///< the NCCL library was found at build time (no NCCL collective is built)
};

/// The build facts of the binary calling it. Thread-safe.
BuildInfo build_info();

/// Run-time facts about this machine. Fields that cannot be read are empty / zero.
struct HostInfo {
  std::string hostname;
  std::string os;                      ///< uname: sysname release machine
  std::string cpu_model;               ///< first "model name" of /proc/cpuinfo
  unsigned logical_cores = 0;          ///< online logical CPUs
  std::uint64_t memory_bytes = 0;      ///< physical memory, bytes
  std::vector<std::string> gpu_names;  ///< from /proc/driver/nvidia/gpus/*/information
};

/// Reads the host facts (a few small /proc reads). Thread-safe.
HostInfo host_info();

/// host.json content: {"build": {...}, "host": {...}, "torch_version": "..."}.
/// `torch_version` comes from the caller (this library has no torch); empty means "not linked".
nlohmann::json host_json(const BuildInfo& build, const HostInfo& host, const std::string& torch_version);

}  // namespace gradzip::runlog
