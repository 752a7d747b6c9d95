// The message of an exception held in a std::exception_ptr, for error lines written where
// the exception itself cannot travel further (a terminate handler, a hook callback).
#pragma once

#include <exception>
#include <string>

namespace gradzip::comm {

/// what() of the exception in `error` when it derives from std::exception, else
/// `otherwise` (also for a null pointer).
inline std::string describe_exception(const std::exception_ptr& error, const char* otherwise) {
  if (!error) return otherwise;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
  }
  return otherwise;
}

}  // namespace gradzip::comm
