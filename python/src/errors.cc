#include "python/src/errors.h"

#include <exception>
#include <string>

namespace py = pybind11;

namespace gradzip::python {
namespace {

/// Sets the Python error indicator to gradzip.errors.<cls>(message, errc_name). Falls
/// back to RuntimeError when the package module cannot be imported (the extension was
/// loaded on its own), so a failure still never escapes as a crash.
void raise(const char* cls, const std::string& message, const char* errc_name) {
  try {
    py::object type = py::module_::import("gradzip.errors").attr(cls);
    py::object instance = type(message, errc_name);
    PyErr_SetObject(type.ptr(), instance.ptr());
  } catch (py::error_already_set&) {
    PyErr_Clear();
    PyErr_SetString(PyExc_RuntimeError, (std::string(errc_name) + ": " + message).c_str());
  }
}

}  // namespace

void register_error_translator() {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      const quant::Errc code = e.status().code();
      const char* cls = code == quant::Errc::kCuda            ? "CudaError"
                        : e.site() == ErrorSite::kDecode      ? "WireError"
                                                              : "EncodeError";
      raise(cls, e.what(), quant::errc_name(code));
    } catch (const quant::SpecError& e) {
      raise("SpecError", e.what(), "spec");
    } catch (const quant::QuantError& e) {
      raise("GradzipError", e.what(), quant::errc_name(e.code()));
    }
  });
}

}  // namespace gradzip::python
