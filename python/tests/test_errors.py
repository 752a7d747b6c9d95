"""Bad specs and malformed messages raise gradzip exceptions that name the key or the
wire error, and never crash the interpreter."""

import json
import subprocess
import sys

import pytest
import torch

import gradzip
from conftest import TESTS, package_env


@pytest.mark.parametrize("spec,named", [
    ("qsgd:bits=9", "bits=9"),
    ("topk:ratio=2", "ratio=2"),
    ("qsgd:bogus=1", "'bogus'"),
    ("qsgd:norm=l3", "norm=l3"),
    ("qsgd:bits=4,bits=2", "'bits' given twice"),
    ("nosuchcodec", "'nosuchcodec'"),
    ("nomemory+qsgd", "'nomemory'"),
    ("dgc:momentum=2+dgc", "momentum=2"),
    ("qsgd:bits", "'bits'"),
    ("", "missing codec name"),
])
def test_bad_spec_raises_spec_error_naming_the_key(spec, named):
    with pytest.raises(gradzip.SpecError) as info:
        gradzip.Compressor(spec)
    assert named in str(info.value)
    assert isinstance(info.value, ValueError) and info.value.code == "SpecError"


def test_ddp_hook_checks_its_exchange_option():
    with pytest.raises(gradzip.SpecError, match="exchange='ring'"):
        gradzip.ddp_hook("fp16", exchange="ring")
    with pytest.raises(gradzip.SpecError, match="needs codec fp16 or bf16"):
        gradzip.ddp_hook("topk:ratio=0.1", exchange="allreduce")


def test_wire_errors_carry_the_cpp_error_name():
    c = gradzip.Compressor("qsgd:bits=4")
    msg = c.encode(torch.linspace(-1, 1, 100))
    flipped = msg.clone()
    flipped[60] ^= 4
    cases = [(flipped, "kBadChecksum", "bad_checksum"), (msg[:20], "kTruncated", "truncated"),
             (gradzip.Compressor("fp16").encode(torch.zeros(100)), "kCodecMismatch", "codec_mismatch")]
    for bad, code, errc in cases:
        with pytest.raises(gradzip.WireError) as info:
            c.decode(bad)
        assert (info.value.code, info.value.errc) == (code, errc) and str(info.value).startswith(errc)
    with pytest.raises(gradzip.WireError) as info:
        c.decode(msg, out=torch.zeros(99))
    assert info.value.code == "kSizeMismatch"


def test_nan_gradient_is_an_encode_error_and_keeps_the_residual():
    c = gradzip.Compressor("ef+topk:ratio=0.1")
    c.encode(torch.linspace(-1, 1, 50), bucket=1)
    before = c.bucket_state(1)
    x = torch.ones(50)
    x[7] = float("nan")
    with pytest.raises(gradzip.EncodeError) as info:
        c.encode(x, bucket=1)
    assert info.value.code == "kNonFiniteInput"
    after = c.bucket_state(1)
    assert torch.equal(before["residual"], after["residual"]) and before["steps"] == after["steps"]


def test_malformed_messages_never_crash_and_raise_wire_errors():
    proc = subprocess.run([sys.executable, str(TESTS / "malformed_messages.py"), "300"], env=package_env(),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"child interpreter died (rc {proc.returncode}): {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    assert len(report) >= len({e["name"] for e in gradzip.compressors() if e["kind"] == "codec"})
    deeper = set()
    for spec, summary in report.items():
        assert summary["unexpected"] == [], spec
        assert summary["codes"].get("kTruncated", 0) > 0 and summary["codes"].get("kBadChecksum", 0) > 0, spec
        deeper |= set(summary["resealed_codes"]) - {"kBadChecksum"}
    # Resealed rewrites get past the checksum to the header and codec validators.
    assert {"kBadLength", "kBadParams", "kSizeMismatch", "kCodecMismatch"} <= deeper, deeper
