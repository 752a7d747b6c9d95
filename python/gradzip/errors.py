"""Exceptions raised by gradzip. Every failure of the C++ core arrives as one of these.

``code`` is the C++ error enumerator (``quant::Errc``, quant/status.h), e.g.
``"kBadChecksum"``; ``errc`` is its stable log name, e.g. ``"bad_checksum"``; ``str(e)``
is the full message ("bad_checksum: xxh3 mismatch ...").
"""


def _enumerator(errc):
    """'bad_checksum' -> 'kBadChecksum' (the spelling of quant::Errc in C++)."""
    return "k" + "".join(word.capitalize() for word in errc.split("_"))


class GradzipError(Exception):
    """Base class: a failed gradzip operation. ``code``/``errc`` name the error."""

    def __init__(self, message, errc="invalid_argument"):
        super().__init__(message)
        self.errc = errc
        self.code = _enumerator(errc)


class WireError(GradzipError):
    """A message was refused by a decoder: truncated, bad magic/version/checksum, wrong
    codec or element count, bad params or payload. Nothing was written to the output."""


class EncodeError(GradzipError):
    """An encode failed, e.g. ``kNonFiniteInput`` (NaN or Inf in the gradient)."""


class CudaError(GradzipError):
    """A CUDA runtime call failed (``kCuda``; the message holds file:line and the CUDA error)."""


class SpecError(GradzipError, ValueError):
    """A bad compressor spec string. The message names the codec/memory, the key, the value
    and what is allowed, e.g. "qsgd: bits=9 is out of range; allowed: integer 2..8"."""

    def __init__(self, message, errc="spec"):
        super().__init__(message, errc)
        self.code = "SpecError"
