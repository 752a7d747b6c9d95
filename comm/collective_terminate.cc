// The last resort of a rank whose engine thread throws (comm/collective_engine.h,
// CollectiveEngine::escaped_error). Gloo's TCP transport runs its own I/O thread, and its
// GLOO_ENFORCE checks throw gloo::EnforceNotMet there (a message of another collective,
// a connection lost while it was being set up) where nothing of ours can catch it:
// std::terminate would abort the rank (SIGABRT, a core, no word on the cause) and leave
// the other ranks to guess. While an engine is alive, a terminate with an exception in
// flight instead diagnoses the ranks from the engine's store, records the failure for the
// others, prints one line on stderr and ends the process with status 1. A terminate
// without an exception, or with no engine alive, goes to the previous handler.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <vector>

#include "comm/collective_engine.h"
#include "comm/describe_exception.h"

namespace gradzip::comm {
namespace {

std::mutex g_mu;
std::vector<CollectiveEngine*> g_engines;  // the engines alive in this process
std::terminate_handler g_previous = nullptr;

[[noreturn]] void on_terminate() {
  const std::exception_ptr in_flight = std::current_exception();
  if (in_flight) {
    const std::string what = describe_exception(in_flight, "an exception of unknown type");
    std::lock_guard<std::mutex> lock(g_mu);  // held until _Exit: no engine is destroyed meanwhile
    if (!g_engines.empty()) {
      const std::string line = g_engines.back()->escaped_error(what);
      std::fprintf(stderr, "%s\n", line.c_str());
      std::fflush(stderr);
      std::_Exit(1);
    }
  }
  if (g_previous) g_previous();
  std::abort();
}

}  // namespace

void register_engine_for_terminate(CollectiveEngine* engine) {
  std::lock_guard<std::mutex> lock(g_mu);
  static std::once_flag once;
  std::call_once(once, [] { g_previous = std::set_terminate(&on_terminate); });
  g_engines.push_back(engine);
}

void unregister_engine_for_terminate(CollectiveEngine* engine) {
  std::lock_guard<std::mutex> lock(g_mu);
  for (auto it = g_engines.begin(); it != g_engines.end(); ++it) {
    if (*it == engine) {
      g_engines.erase(it);
      return;
    }
  }
}

}  // namespace gradzip::comm
