// `gradzip version`: version, git revision, compiler, whether CUDA twins were built and
// whether the NCCL library was found, torch version and this machine's GPUs.
#include <iostream>

#include "experiments/runlog/hostinfo.h"
#include "experiments/commands.h"

#ifndef GRADZIP_TORCH_VERSION
#define GRADZIP_TORCH_VERSION ""
#endif

namespace gradzip::cli {

int cmd_version(int argc, char** argv) {
  OptionTable table("version", "Print the gradzip version and how this binary was built.");
  return run_command(table, argc, argv, [] {
    const runlog::BuildInfo b = runlog::build_info();
    const runlog::HostInfo h = runlog::host_info();
    const std::string torch = GRADZIP_TORCH_VERSION;
    std::cout << "gradzip " << b.version << "\n"
              << "git revision: " << b.git_revision << "\n"
              << "compiler:     " << b.compiler << " (" << b.build_type << ")\n"
              << "CUDA:         " << (b.cuda_enabled ? "on, toolkit " + b.cuda_version : std::string("off")) << "\n"
              // A library found is not a transport: no NCCL collective is built yet.
              << "NCCL:         no collective built (library "
              << (b.nccl_enabled ? "found at build time)" : "not found, or GRADZIP_NCCL=OFF)") << "\n"
              << "torch:        " << (torch.empty() ? std::string("not linked") : torch) << "\n"
              << "GPUs:         ";
    if (h.gpu_names.empty()) std::cout << "none visible";
    for (std::size_t i = 0; i < h.gpu_names.size(); ++i) std::cout << (i ? ", " : "") << h.gpu_names[i];
    std::cout << "\n";
    return static_cast<int>(kExitOk);
  });
}

}  // namespace gradzip::cli
