"""CUDA side of gradzip.Compressor: the CUDA twins (quant/cuda.h) on torch CUDA tensors.

The C++ DeviceCompressor gets device addresses and torch's current stream of the
tensor's device (as an integer); this module owns every device buffer as a torch tensor:
per-bucket error-feedback state (residual, momentum, scratch, as the memory needs), a
workspace per device (grown by the two-phase size queries) and the message buffers.
Not exercised on the development machines (no GPU); tests report skipped there.
"""

import torch

from . import _gradzip as _C
from .errors import GradzipError

# The twins' kernels store the message header as 32-bit words (quant/cuda.h:
# kMessageAlignment); torch's CUDA allocations are 512-byte aligned, so a fresh tensor is.
_MIN_WORKSPACE = 16  # a null workspace means "size query": always pass a real buffer


class DeviceState:
    def __init__(self, spec, seed):
        if not _C.built_with_cuda:
            raise GradzipError("gradzip was built without CUDA (GRADZIP_CUDA=OFF or no nvcc): "
                               "CUDA tensors need a CUDA build", "invalid_argument")
        self._codec = _C.DeviceCompressor(spec, seed)  # SpecError when a part has no CUDA twin
        self._state = {}  # bucket -> {"residual", "momentum", "scratch", "steps"}
        self._workspace = {}  # torch.device -> uint8 tensor

    def _stream(self, device):
        return torch.cuda.current_stream(device).cuda_stream

    def _workspace_for(self, device, nbytes):
        ws = self._workspace.get(device)
        if ws is None or ws.numel() < max(nbytes, _MIN_WORKSPACE):
            ws = torch.empty(max(nbytes, _MIN_WORKSPACE), dtype=torch.uint8, device=device)
            self._workspace[device] = ws
        return ws

    def _state_for(self, bucket, n, device):
        st = self._state.get(bucket)
        if st is None or st["n"] != n or st["device"] != device:
            c = self._codec

            def zeros(needed, count):
                return torch.zeros(count if needed else 0, dtype=torch.float32, device=device)

            st = {"n": n, "device": device, "steps": 0,
                  "residual": zeros(c.needs_residual, n), "momentum": zeros(c.needs_momentum, n),
                  "scratch": torch.zeros(_C.memory_scratch_bytes if c.needs_scratch else 0, dtype=torch.uint8,
                                         device=device)}
            self._state[bucket] = st
        return st

    @staticmethod
    def _ptr(t):
        return t.data_ptr() if t.numel() else 0

    def encode(self, flat, step, worker, bucket, out):
        n, device = flat.numel(), flat.device
        capacity = self._codec.max_encoded_bytes(n)
        if out is None:
            out = torch.empty(capacity, dtype=torch.uint8, device=device)
        elif out.dtype != torch.uint8 or out.device != device or not out.is_contiguous() or out.numel() < capacity:
            raise ValueError(f"out must be a contiguous torch.uint8 tensor on {device} of >= {capacity} bytes")
        host = torch.empty(capacity, dtype=torch.uint8, pin_memory=True)
        st = self._state_for(bucket, n, device)
        ws = self._workspace_for(device, self._codec.encode_workspace_bytes(n))
        with torch.cuda.device(device):
            nbytes, st["steps"] = self._codec.encode(
                flat.data_ptr(), n, step, worker, bucket, self._ptr(st["residual"]), self._ptr(st["momentum"]),
                self._ptr(st["scratch"]), st["steps"], out.data_ptr(), host.data_ptr(), capacity, ws.data_ptr(),
                ws.numel(), self._stream(device))
        return out.view(-1)[:nbytes]

    def decode(self, m, flat, scale, accumulate):
        device = flat.device
        h_msg = m.cpu() if m.is_cuda else m
        d_msg = m if m.is_cuda and m.device == device else h_msg.to(device)
        ws = self._workspace_for(device, self._codec.decode_workspace_bytes(flat.numel()))
        with torch.cuda.device(device):
            self._codec.decode(h_msg.data_ptr(), d_msg.data_ptr(), h_msg.numel(), flat.data_ptr(), flat.numel(),
                               scale, accumulate, ws.data_ptr(), ws.numel(), self._stream(device))

    # ---- state -----------------------------------------------------------------------

    def has(self, bucket):
        return bucket in self._state

    def buckets(self):
        return list(self._state)

    def get(self, bucket):
        st = self._state[bucket]
        return {"residual": st["residual"].clone(), "momentum": st["momentum"].clone(), "steps": st["steps"]}

    def set(self, bucket, residual, momentum, steps):
        device = residual.device if residual.is_cuda else momentum.device
        n = max(residual.numel(), momentum.numel())
        st = self._state_for(bucket, n, device)
        if residual.numel():
            st["residual"] = residual.to(device=device, copy=True)
        if momentum.numel():
            st["momentum"] = momentum.to(device=device, copy=True)
        st["steps"] = steps

    def clear(self):
        self._state.clear()
