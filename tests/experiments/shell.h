// Running a command line from a test: exit status and combined output (for the tests
// that drive the built `gradzip` binary).
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace gradzip::testing {

struct ShellResult {
  int status = -1;     ///< exit status (128 when the command did not exit normally)
  std::string output;  ///< stdout and stderr
};

/// Runs `cmd` under /bin/sh with stdout and stderr into `log`, then reads `log` back.
inline ShellResult shell(const std::string& cmd, const std::filesystem::path& log) {
  const int rc = std::system(("(" + cmd + ") > '" + log.string() + "' 2>&1").c_str());
  ShellResult r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
  std::ifstream f(log);
  std::ostringstream os;
  os << f.rdbuf();
  r.output = os.str();
  return r;
}

}  // namespace gradzip::testing
