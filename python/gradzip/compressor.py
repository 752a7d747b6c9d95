"""gradzip.Compressor: a gradzip compressor spec applied to torch tensors.

The same codecs, spec strings, seeds and wire bytes as the C++ library (quant/): a
message produced here decodes in a gradzip parameter server and vice versa. Tensors go
to C++ as addresses (python/src/module.cc); this file checks them first.
"""

import torch

from . import _gradzip as _C
from .errors import GradzipError, SpecError

__all__ = ["Compressor", "compressors", "describe", "decode", "message_info"]


def _flat_float32(tensor, what, writable=False):
    """The tensor as a 1-D contiguous float32 view (or copy when not writable and not
    contiguous). Refuses other dtypes rather than converting silently."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype != torch.float32:
        raise TypeError(f"{what} must be torch.float32, got {tensor.dtype}")
    if not tensor.is_contiguous():
        if writable:
            raise ValueError(f"{what} must be contiguous (it is written in place)")
        tensor = tensor.contiguous()
    return tensor.view(-1)


def _as_message(msg):
    """A message as a 1-D contiguous torch.uint8 tensor (bytes-like objects are copied)."""
    if isinstance(msg, (bytes, bytearray, memoryview)):
        return torch.frombuffer(bytearray(msg), dtype=torch.uint8) if len(msg) else torch.empty(0, dtype=torch.uint8)
    if not isinstance(msg, torch.Tensor):
        raise TypeError(f"message must be a torch.uint8 tensor or bytes, got {type(msg).__name__}")
    if msg.dtype != torch.uint8:
        raise TypeError(f"message must be torch.uint8, got {msg.dtype}")
    return msg.contiguous().view(-1)


def message_info(msg):
    """(codec name, element count, message bytes) of a message, after validating its
    header, lengths and checksum. Raises WireError."""
    m = _as_message(msg)
    if m.is_cuda:
        m = m.cpu()
    return _C.message_info(m.data_ptr(), m.numel())


def decode(msg, out=None):
    """Decodes any gradzip message (the codec is read from the message) into a new
    float32 tensor, or into ``out``. Raises WireError for a malformed message."""
    m = _as_message(msg)
    if m.is_cuda:
        raise GradzipError("gradzip.decode takes host messages; use Compressor(spec).decode for CUDA")
    if out is None:
        _, numel, _ = _C.message_info(m.data_ptr(), m.numel())
        out = torch.empty(numel, dtype=torch.float32)
    flat = _flat_float32(out, "out", writable=True)
    _C.decode_any(m.data_ptr(), m.numel(), flat.data_ptr(), flat.numel(), 1.0, False)
    return out


def compressors():
    """The registry: a list of dicts, one per codec ("kind": "codec", with "wire_id") and
    per memory ("kind": "memory"), each with "name", "summary", "paper" and "params"
    (name, kind, default, allowed, doc). The same table as `gradzip compressors`."""
    return _C.registry()


def describe():
    """The registry as the text `gradzip compressors` prints."""
    return _C.describe_registry()


class Compressor:
    """A memory and a codec built from one spec, e.g. ``"ef+topk:ratio=0.01"`` (grammar
    and parameters: ``gradzip.describe()``). A bad spec raises SpecError naming the key.

    ``encode(tensor, step, worker, bucket)`` applies the memory (error feedback kept per
    ``bucket`` id) and returns the wire message as a torch.uint8 tensor on the tensor's
    device; ``step``, ``worker``, ``bucket`` and ``seed`` key the Philox randomness of
    stochastic codecs exactly as in C++ (quant/philox.h: SeedContext). CPU tensors use the
    CPU codecs; CUDA tensors use the CUDA twins (when gradzip was built with CUDA), with
    identical bytes. Not thread-safe: use one instance per thread.
    """

    def __init__(self, spec, seed=0):
        self._host = _C.HostCompressor(spec, seed)
        self.seed = seed
        self._cuda = None  # gradzip._cuda.DeviceState, built on first CUDA tensor

    @property
    def spec(self):
        """Canonical "memory+codec" spec with every parameter spelled out."""
        return self._host.spec

    @property
    def codec_spec(self):
        return self._host.codec_spec

    @property
    def memory_spec(self):
        return self._host.memory_spec

    @property
    def codec(self):
        """Codec name, e.g. "topk"."""
        return self._host.codec_spec.split(":", 1)[0]

    def __repr__(self):
        return f"gradzip.Compressor({self.spec!r}, seed={self.seed})"

    def max_encoded_bytes(self, numel):
        """Upper bound of a message for ``numel`` elements, in bytes."""
        return self._host.max_encoded_bytes(numel)

    def _device(self):
        if self._cuda is None:
            from ._cuda import DeviceState  # only imported when a CUDA tensor shows up

            self._cuda = DeviceState(self.spec, self.seed)
        return self._cuda

    def encode(self, tensor, step=0, worker=0, bucket=0, *, out=None, in_place=False):
        """Compresses ``tensor`` (float32, any shape) and returns the message, a 1-D
        torch.uint8 tensor (a view of ``out`` when given: a buffer of at least
        ``max_encoded_bytes(numel)`` bytes reused across calls). With ``in_place=True``
        the tensor may be overwritten by the error-compensated vector (saves a copy when
        the caller discards it). Raises EncodeError (e.g. kNonFiniteInput for NaN/Inf)."""
        flat = _flat_float32(tensor, "tensor", writable=in_place)
        n = flat.numel()
        if flat.is_cuda:
            return self._device().encode(flat, step, worker, bucket, out)
        capacity = self._host.max_encoded_bytes(n)
        if out is None:
            out = torch.empty(capacity, dtype=torch.uint8)
        elif out.dtype != torch.uint8 or out.is_cuda or not out.is_contiguous() or out.numel() < capacity:
            raise ValueError(f"out must be a contiguous CPU torch.uint8 tensor of >= {capacity} bytes")
        nbytes = self._host.encode(flat.data_ptr(), n, step, worker, bucket, out.data_ptr(), capacity, in_place)
        return out.view(-1)[:nbytes]

    def decode(self, msg, out=None):
        """Decodes a message of this compressor's codec into a new float32 tensor (on the
        message's device) or into ``out``. Raises WireError (nothing written) when the
        message is malformed, of another codec, or of another element count."""
        m = _as_message(msg)
        if out is None:
            _, numel, _ = message_info(m)
            out = torch.empty(numel, dtype=torch.float32, device=m.device)
        self._decode(m, out, 1.0, False)
        return out

    def decode_add(self, msg, acc, scale=1.0):
        """acc += scale * decode(msg), in one pass without a temporary; returns acc.
        Raises WireError (acc untouched) for a malformed message."""
        self._decode(_as_message(msg), acc, scale, True)
        return acc

    def _decode(self, m, out, scale, accumulate):
        flat = _flat_float32(out, "out" if not accumulate else "acc", writable=True)
        if flat.is_cuda:
            self._device().decode(m, flat, scale, accumulate)
            return
        if m.is_cuda:
            m = m.cpu()
        if accumulate:
            self._host.decode_add(m.data_ptr(), m.numel(), flat.data_ptr(), flat.numel(), scale)
        else:
            self._host.decode(m.data_ptr(), m.numel(), flat.data_ptr(), flat.numel())

    # ---- error-feedback state ------------------------------------------------------

    def bucket_state(self, bucket):
        """The error-feedback state of one bucket: {"residual": tensor, "momentum":
        tensor, "steps": int} (copies; empty tensors for a memory that keeps none), or
        None when the bucket has no state yet."""
        if self._cuda is not None and self._cuda.has(bucket):
            return self._cuda.get(bucket)
        if bucket not in self._host.state_buckets():
            return None
        n_res, n_mom, steps = self._host.state_sizes(bucket)
        residual = torch.zeros(n_res, dtype=torch.float32)
        momentum = torch.zeros(n_mom, dtype=torch.float32)
        self._host.read_state(bucket, residual.data_ptr(), momentum.data_ptr())
        return {"residual": residual, "momentum": momentum, "steps": steps}

    def set_bucket_state(self, bucket, state):
        """Replaces one bucket's state (a dict as bucket_state returns; tensors on the
        device where the bucket will be encoded)."""
        residual = _flat_float32(state["residual"], "residual").detach()
        momentum = _flat_float32(state["momentum"], "momentum").detach()
        if residual.is_cuda or momentum.is_cuda:
            self._device().set(bucket, residual, momentum, int(state["steps"]))
            return
        self._host.write_state(bucket, residual.data_ptr(), residual.numel(), momentum.data_ptr(), momentum.numel(),
                               int(state["steps"]))

    def state_dict(self):
        """{"spec", "seed", "buckets": {bucket id: bucket_state}} with CPU tensors, for
        torch.save next to the model's checkpoint."""
        ids = set(self._host.state_buckets())
        if self._cuda is not None:
            ids |= set(self._cuda.buckets())
        buckets = {}
        for b in sorted(ids):
            s = self.bucket_state(b)
            buckets[b] = {"residual": s["residual"].cpu(), "momentum": s["momentum"].cpu(), "steps": s["steps"]}
        return {"spec": self.spec, "seed": self.seed, "buckets": buckets}

    def load_state_dict(self, state):
        """Restores what state_dict returned. The spec must match (SpecError otherwise):
        a residual means something only for the memory and codec that produced it."""
        if state.get("spec") != self.spec:
            raise SpecError(f"state was saved by compressor '{state.get('spec')}', this one is '{self.spec}'")
        self.reset()
        for b, s in state["buckets"].items():
            self.set_bucket_state(int(b), s)

    def reset(self):
        """Drops every bucket's error-feedback state."""
        self._host.clear_state()
        if self._cuda is not None:
            self._cuda.clear()
