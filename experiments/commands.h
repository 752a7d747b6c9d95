// Entry points of the `gradzip` sub-commands; main.cc dispatches argv[1] to one of them.
// Each takes the arguments after the program name (argv[0] is the command name) and
// returns the process exit code (cli::ExitCode). One file per command: cmd_<name>.cc.
#pragma once

#include "experiments/cli.h"

namespace gradzip::cli {

int cmd_train(int argc, char** argv);
int cmd_launch(int argc, char** argv);
int cmd_ps(int argc, char** argv);
int cmd_worker(int argc, char** argv);
int cmd_pack(int argc, char** argv);
int cmd_compressors(int argc, char** argv);
int cmd_placement(int argc, char** argv);
int cmd_report(int argc, char** argv);
int cmd_sweep(int argc, char** argv);
int cmd_keys(int argc, char** argv);
int cmd_version(int argc, char** argv);

}  // namespace gradzip::cli
