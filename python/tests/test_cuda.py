"""CUDA tensors through the CUDA twins: the same bytes as the CPU codecs (golden vectors)
and the same error-feedback state. Skipped (with the reason) without a CUDA device or
without a CUDA build; on the development machines (no GPU) these tests never run."""

import pytest
import torch

import gradzip
from golden import BUCKET, SEED, STEP, WORKER, golden_input, golden_messages

_ok, _why = gradzip.cuda_available()
if _ok and not torch.cuda.is_available():
    _ok, _why = False, "this torch build has no CUDA"
pytestmark = pytest.mark.skipif(not _ok, reason=f"no CUDA device: {_why}")

GOLDEN = golden_messages()
TWINS = set(gradzip._gradzip.cuda_codec_names()) if gradzip.built_with_cuda else set()


@pytest.mark.parametrize("spec,expected", GOLDEN, ids=[s for s, _ in GOLDEN])
def test_cuda_encode_and_decode_match_the_cpu_bytes(spec, expected):
    if spec.split(":", 1)[0] not in TWINS:
        pytest.skip(f"{spec}: no CUDA twin")
    c = gradzip.Compressor(spec, seed=SEED)
    x = golden_input().cuda()
    msg = c.encode(x, step=STEP, worker=WORKER, bucket=BUCKET)
    assert msg.is_cuda and bytes(msg.cpu().numpy()) == expected
    assert torch.equal(c.decode(msg).cpu(), c.decode(expected))
    acc = torch.ones(37, device="cuda")
    c.decode_add(msg, acc, 0.5)
    assert torch.allclose(acc.cpu(), 1 + 0.5 * c.decode(expected), rtol=0, atol=1e-6)


def test_cuda_error_feedback_state_equals_the_cpu_state():
    cpu, gpu = gradzip.Compressor("ef+topk:ratio=0.05"), gradzip.Compressor("ef+topk:ratio=0.05")
    for step in range(3):
        g = torch.randn(5000, generator=torch.Generator().manual_seed(step))
        a = cpu.encode(g, step=step, bucket=1)
        b = gpu.encode(g.cuda(), step=step, bucket=1)
        assert bytes(a.numpy()) == bytes(b.cpu().numpy())
    assert torch.equal(cpu.bucket_state(1)["residual"], gpu.bucket_state(1)["residual"].cpu())


def test_malformed_message_on_cuda_is_a_wire_error():
    c = gradzip.Compressor("qsgd")
    msg = c.encode(torch.randn(100, device="cuda"))
    bad = msg.clone()
    bad[45] ^= 1
    with pytest.raises(gradzip.WireError) as info:
        c.decode(bad)
    assert info.value.code == "kBadChecksum"
