// gradzip._gradzip: the C++ side of the Python package (python/gradzip/). Plain pybind11,
// no torch headers: tensors cross as integers (data_ptr, numel, device stream) that the
// Python layer takes from tensors it has checked (dtype, contiguity, device, sizes), and
// the Python layer allocates every output tensor. So the module builds in seconds and
// works unchanged with any PyTorch version (1.13 from Debian, 2.x from pip).
//
// Calls that touch gradient-sized data release the GIL. Failures become gradzip.errors
// exceptions (python/src/errors.h); nothing here aborts on a bad message or spec.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "python/src/errors.h"
#include "python/src/host_compressor.h"
#include "quant/codec.h"
#include "quant/registry.h"
#include "quant/wire.h"
#ifdef GRADZIP_HAVE_CUDA
#include "python/src/device_compressor.h"
#endif

namespace py = pybind11;

namespace gradzip::python {
namespace {

const char* kind_name(quant::ParamKind kind) {
  switch (kind) {
    case quant::ParamKind::kInt: return "int";
    case quant::ParamKind::kFloat: return "float";
    case quant::ParamKind::kEnum: return "enum";
    case quant::ParamKind::kBool: return "bool";
  }
  return "?";
}

py::list describe_params(const std::vector<quant::ParamInfo>& params) {
  py::list out;
  for (const auto& p : params) {
    py::dict d;
    d["name"] = p.name;
    d["kind"] = kind_name(p.kind);
    d["default"] = p.default_value;
    d["allowed"] = quant::describe_allowed(p);
    d["doc"] = p.doc;
    out.append(d);
  }
  return out;
}

/// The registry as Python data: one dict per codec and per memory.
py::list registry() {
  py::list out;
  for (const auto* e : quant::codec_entries()) {
    py::dict d;
    d["kind"] = "codec";
    d["name"] = e->name;
    d["wire_id"] = static_cast<int>(e->id);
    d["summary"] = e->summary;
    d["paper"] = e->paper;
    d["params"] = describe_params(e->params);
    out.append(d);
  }
  for (const auto* e : quant::memory_entries()) {
    py::dict d;
    d["kind"] = "memory";
    d["name"] = e->name;
    d["summary"] = e->summary;
    d["paper"] = e->paper;
    d["params"] = describe_params(e->params);
    out.append(d);
  }
  return out;
}

/// (codec name, element count, message bytes) of a message after full validation of its
/// header, lengths and checksum (quant::parse_message). Throws WireError.
py::tuple message_info(std::uintptr_t msg, std::size_t bytes) {
  quant::MessageView view;
  check(quant::parse_message(reinterpret_cast<const std::uint8_t*>(msg), bytes, &view), ErrorSite::kDecode);
  const std::size_t total = quant::kHeaderBytes + view.params_bytes + view.payload_bytes;
  return py::make_tuple(std::string(quant::codec_name(view.codec)), view.numel, total);
}

void decode_any(std::uintptr_t msg, std::size_t bytes, std::uintptr_t out, std::size_t n, float scale,
                bool accumulate) {
  const auto* m = reinterpret_cast<const std::uint8_t*>(msg);
  auto* o = reinterpret_cast<float*>(out);
  check(accumulate ? quant::decode_add_any(m, bytes, o, n, scale) : quant::decode_any(m, bytes, o, n),
        ErrorSite::kDecode);
}

/// Testing aid: rewrites the checksum of a hand-made message (bytes at msg) from the
/// lengths its header declares, so that tests reach the codec's own validation behind
/// the checksum. Returns false (nothing written) when the declared lengths do not fit.
bool seal_message(std::uintptr_t msg, std::size_t bytes) {
  auto* m = reinterpret_cast<std::uint8_t*>(msg);
  if (bytes < quant::kHeaderBytes) return false;
  const auto payload_bytes = quant::load_le<std::uint64_t>(m + 16);
  const auto params_bytes = quant::load_le<std::uint32_t>(m + 24);
  if (params_bytes > bytes - quant::kHeaderBytes || payload_bytes > bytes - quant::kHeaderBytes - params_bytes) {
    return false;
  }
  quant::store_le<std::uint64_t>(m + 32, quant::message_checksum(m, params_bytes, payload_bytes));
  return true;
}

bool cuda_device_available(std::string* why) {
#ifdef GRADZIP_HAVE_CUDA
  return quant::cuda::device_available(why);
#else
  *why = "gradzip was built without CUDA (GRADZIP_CUDA=OFF or no nvcc)";
  return false;
#endif
}

}  // namespace
}  // namespace gradzip::python

PYBIND11_MODULE(_gradzip, m) {
  using namespace gradzip::python;
  namespace quant = gradzip::quant;
  m.doc() = "gradzip codecs (C++ core of the gradzip Python package; use the gradzip module)";
  register_error_translator();

  m.attr("header_bytes") = quant::kHeaderBytes;
#ifdef GRADZIP_HAVE_CUDA
  m.attr("built_with_cuda") = true;
  m.def("cuda_codec_names", &quant::cuda::cuda_codec_names);
  m.def("cuda_memory_names", &quant::cuda::cuda_memory_names);
#else
  m.attr("built_with_cuda") = false;
#endif
  m.def("cuda_device_available", []() {
    std::string why;
    const bool ok = cuda_device_available(&why);
    return py::make_tuple(ok, why);
  });
  m.def("registry", &registry);
  m.def("describe_registry", &quant::describe_registry);
  m.def("message_info", &message_info, py::arg("msg"), py::arg("bytes"));
  m.def("seal_message", &seal_message, py::arg("msg"), py::arg("bytes"));
  m.def("decode_any", &decode_any, py::arg("msg"), py::arg("bytes"), py::arg("out"), py::arg("n"),
        py::arg("scale"), py::arg("accumulate"), py::call_guard<py::gil_scoped_release>());

  py::class_<HostCompressor>(m, "HostCompressor")
      .def(py::init<const std::string&, std::uint64_t>(), py::arg("spec"), py::arg("seed"))
      .def_property_readonly("spec", &HostCompressor::spec)
      .def_property_readonly("codec_spec", &HostCompressor::codec_spec)
      .def_property_readonly("memory_spec", &HostCompressor::memory_spec)
      .def_property_readonly("seed", &HostCompressor::seed)
      .def("max_encoded_bytes", &HostCompressor::max_encoded_bytes, py::arg("n"))
      .def("encode", &HostCompressor::encode, py::arg("grad"), py::arg("n"), py::arg("step"), py::arg("worker"),
           py::arg("bucket"), py::arg("out"), py::arg("capacity"), py::arg("in_place"),
           py::call_guard<py::gil_scoped_release>())
      .def("decode", &HostCompressor::decode, py::arg("msg"), py::arg("bytes"), py::arg("out"), py::arg("n"),
           py::call_guard<py::gil_scoped_release>())
      .def("decode_add", &HostCompressor::decode_add, py::arg("msg"), py::arg("bytes"), py::arg("acc"),
           py::arg("n"), py::arg("scale"), py::call_guard<py::gil_scoped_release>())
      .def("state_buckets", &HostCompressor::state_buckets)
      .def("state_sizes", &HostCompressor::state_sizes, py::arg("bucket"))
      .def("read_state", &HostCompressor::read_state, py::arg("bucket"), py::arg("residual"), py::arg("momentum"))
      .def("write_state", &HostCompressor::write_state, py::arg("bucket"), py::arg("residual"),
           py::arg("residual_n"), py::arg("momentum"), py::arg("momentum_n"), py::arg("steps"))
      .def("clear_state", &HostCompressor::clear_state);

#ifdef GRADZIP_HAVE_CUDA
  py::class_<DeviceCompressor>(m, "DeviceCompressor")
      .def(py::init<const std::string&, std::uint64_t>(), py::arg("spec"), py::arg("seed"))
      .def_property_readonly("spec", &DeviceCompressor::spec)
      .def_property_readonly("needs_residual", &DeviceCompressor::needs_residual)
      .def_property_readonly("needs_momentum", &DeviceCompressor::needs_momentum)
      .def_property_readonly("needs_scratch", &DeviceCompressor::needs_scratch)
      .def("max_encoded_bytes", &DeviceCompressor::max_encoded_bytes, py::arg("n"))
      .def("encode_workspace_bytes", &DeviceCompressor::encode_workspace_bytes, py::arg("n"))
      .def("decode_workspace_bytes", &DeviceCompressor::decode_workspace_bytes, py::arg("n"))
      .def("encode", &DeviceCompressor::encode, py::call_guard<py::gil_scoped_release>())
      .def("decode", &DeviceCompressor::decode, py::call_guard<py::gil_scoped_release>());
  m.attr("memory_scratch_bytes") = quant::cuda::kMemoryScratchBytes;
#endif
}
