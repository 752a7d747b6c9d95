// How C++ failures reach Python. The binding never lets a C++ exception or a bad Status
// escape as a crash: every failure becomes an instance of a class in gradzip/errors.py,
//   Status from a decoder   -> gradzip.WireError   (.code "kBadChecksum", .errc "bad_checksum")
//   Status from an encoder  -> gradzip.EncodeError (.code "kNonFiniteInput", ...)
//   Errc::kCuda anywhere    -> gradzip.CudaError
//   quant::SpecError        -> gradzip.SpecError   (a ValueError; the message names the key)
// The classes are looked up in the gradzip.errors module when an error is raised (a
// cached import), so the extension holds no Python objects in static storage.
#pragma once

#include <pybind11/pybind11.h>

#include <stdexcept>

#include "quant/status.h"

namespace gradzip::python {

/// Which side of a codec call failed: selects WireError or EncodeError.
enum class ErrorSite { kEncode, kDecode };

/// A non-OK quant::Status carried to the exception translator.
class StatusError : public std::runtime_error {
 public:
  StatusError(quant::Status status, ErrorSite site)
      : std::runtime_error(status.to_string()), status_(std::move(status)), site_(site) {}
  const quant::Status& status() const noexcept { return status_; }
  ErrorSite site() const noexcept { return site_; }

 private:
  quant::Status status_;
  ErrorSite site_;
};

/// Throws StatusError when `status` is not OK.
inline void check(const quant::Status& status, ErrorSite site) {
  if (!status.ok()) throw StatusError(status, site);
}

/// Installs the translator from StatusError / quant::SpecError / quant::QuantError to
/// the gradzip.errors classes. Called once from the module initializer.
void register_error_translator();

}  // namespace gradzip::python
