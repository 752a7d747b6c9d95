// Internal to netem.cc and netem_process.cc: the signal-safe registry of live network
// namespaces and child pids that the SIGINT/SIGTERM handler cleans up (see netem.h,
// "Lifetime"). Fixed-size slots written by normal code and read by the handler, which
// touches no heap and no locks.
#pragma once

#include <sys/types.h>

#include <string>

namespace gradzip::experiments::netem_detail {

/// Installs the SIGINT/SIGTERM handler once per process: kill registered pids, delete
/// registered namespaces, re-raise with the previous disposition.
void install_handlers();
void register_netns(const std::string& name);
void unregister_netns(const std::string& name);
void register_pid(pid_t pid);
void unregister_pid(pid_t pid);

}  // namespace gradzip::experiments::netem_detail
