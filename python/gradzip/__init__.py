"""gradzip: gradzip's gradient codecs inside PyTorch scripts.

    import gradzip
    c = gradzip.Compressor("ef+topk:ratio=0.01")
    msg = c.encode(grad, step=0, worker=0)       # torch.uint8 tensor: the wire message
    avg = c.decode(msg)                          # float32 tensor
    hook = gradzip.ddp_hook("ef+topk:ratio=0.01")
    hook.register(ddp_model)                     # DistributedDataParallel comm hook

Same codecs, spec strings, seeds and message bytes as the C++ library; errors are
gradzip.errors exceptions that name the key or the wire error. See README.md, "Python".
"""

from . import _gradzip
from ._build_info import GIT_REVISION, TORCH_VERSION_AT_BUILD
from .compressor import Compressor, compressors, decode, describe, message_info
from .ddp import DDPHook, comm_hook, ddp_hook
from .errors import CudaError, EncodeError, GradzipError, SpecError, WireError

__all__ = [
    "Compressor", "compressors", "decode", "describe", "message_info", "DDPHook", "comm_hook", "ddp_hook",
    "CudaError", "EncodeError", "GradzipError", "SpecError", "WireError", "built_with_cuda", "cuda_available",
]

built_with_cuda = _gradzip.built_with_cuda


def cuda_available():
    """(True, "") when CUDA tensors can be compressed here, else (False, reason)."""
    return _gradzip.cuda_device_available()
