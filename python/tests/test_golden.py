"""Python encode produces the C++ library's bytes: the golden wire vectors of
tests/quant/golden (pinned by tests/quant/golden_test.cc) for every registered codec."""

import pytest
import torch

import gradzip
from golden import BUCKET, SEED, STEP, WORKER, golden_input, golden_messages

GOLDEN = golden_messages()


@pytest.mark.parametrize("spec,expected", GOLDEN, ids=[s for s, _ in GOLDEN])
def test_encode_matches_cpp_golden_bytes(spec, expected):
    c = gradzip.Compressor(spec, seed=SEED)
    assert c.codec_spec == spec  # the canonical spec round-trips through the binding
    msg = c.encode(golden_input(), step=STEP, worker=WORKER, bucket=BUCKET)
    assert msg.dtype == torch.uint8 and msg.dim() == 1
    assert bytes(msg.numpy()) == expected


@pytest.mark.parametrize("spec,expected", GOLDEN, ids=[s for s, _ in GOLDEN])
def test_golden_message_decodes_the_same_through_both_entry_points(spec, expected):
    c = gradzip.Compressor(spec, seed=SEED)
    a = c.decode(expected)
    b = gradzip.decode(expected)
    assert a.shape == (37,) and torch.equal(a, b)
    name, numel, nbytes = gradzip.message_info(expected)
    assert (name, numel, nbytes) == (c.codec, 37, len(expected))


def test_every_registered_codec_has_a_golden_vector():
    codecs = {e["name"] for e in gradzip.compressors() if e["kind"] == "codec"}
    covered = {spec.split(":", 1)[0] for spec, _ in GOLDEN}
    assert codecs and codecs <= covered
