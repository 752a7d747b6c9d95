// A temporary directory per test for the multi-process comm tests: removed at the end;
// when the test failed, the tail of every *.log in it is printed first (what the
// processes said).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace gradzip::comm::testing {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    path = std::filesystem::temp_directory_path() /
           ("gz_comm_" + std::to_string(::getpid()) + "_" + std::to_string(now));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    if (::testing::Test::HasFailure()) {  // show what the processes said
      for (const auto& e : std::filesystem::directory_iterator(path)) {
        if (e.path().extension() != ".log") continue;
        std::ifstream f(e.path());
        std::stringstream ss;
        ss << f.rdbuf();
        std::string text = ss.str();
        if (text.size() > 4000) text = text.substr(text.size() - 4000);
        std::printf("---- %s\n%s\n", e.path().filename().c_str(), text.c_str());
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

}  // namespace gradzip::comm::testing
