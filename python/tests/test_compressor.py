"""gradzip.Compressor on CPU tensors: round trips, decode_add, error feedback, seeds,
state save/load, argument checks."""

import pytest
import torch

import gradzip


def normal(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g)


def test_identity_round_trip_is_exact_and_shape_is_flattened():
    x = normal(3 * 7 * 11).view(3, 7, 11)
    c = gradzip.Compressor("identity")
    msg = c.encode(x)
    assert msg.numel() == c.max_encoded_bytes(x.numel()) == 40 + 4 * x.numel()
    assert torch.equal(c.decode(msg), x.reshape(-1))


def test_fp16_matches_torch_half_rounding():
    x = normal(4099)
    y = gradzip.Compressor("fp16").decode(gradzip.Compressor("fp16").encode(x))
    assert torch.equal(y, x.half().float())


def test_decode_add_accumulates_scaled_without_touching_the_message():
    x, acc0 = normal(1001, 1), normal(1001, 2)
    c = gradzip.Compressor("qsgd:bits=4")
    msg = c.encode(x, step=3, worker=1)
    acc = acc0.clone()
    assert c.decode_add(msg, acc, scale=0.25) is acc
    assert torch.allclose(acc, acc0 + 0.25 * c.decode(msg), rtol=0, atol=1e-6)


def test_encode_leaves_the_input_untouched_and_in_place_sends_the_same_message():
    x = normal(513)
    keep = x.clone()
    a = gradzip.Compressor("ef+topk:ratio=0.1")
    b = gradzip.Compressor("ef+topk:ratio=0.1")
    for step in range(3):
        m = a.encode(x, step)
        assert torch.equal(x, keep)
        # in_place=True allows the input to be overwritten (the fused path does not need
        # to); the messages and error feedback are the same either way
        assert torch.equal(b.encode(x.clone(), step, in_place=True), m)


def test_error_feedback_invariant_decoded_plus_residual_equals_grad_plus_old_residual():
    c = gradzip.Compressor("ef+topk:ratio=0.05")
    old = torch.zeros(777)
    for step in range(4):
        g = normal(777, step)
        decoded = c.decode(c.encode(g, step=step, bucket=7))
        new = c.bucket_state(7)["residual"]
        assert torch.allclose(decoded + new, g + old, rtol=0, atol=1e-6)
        old = new
    assert c.bucket_state(7)["steps"] == 4 and c.bucket_state(8) is None


def test_stochastic_codec_is_keyed_by_seed_step_worker_bucket():
    x = normal(300)
    a = gradzip.Compressor("qsgd:bits=2", seed=11)
    b = gradzip.Compressor("qsgd:bits=2", seed=11)
    same = bytes(a.encode(x, 5, 2, 1).numpy())
    assert same == bytes(b.encode(x, 5, 2, 1).numpy())
    for other in (a.encode(x, 6, 2, 1), a.encode(x, 5, 3, 1), a.encode(x, 5, 2, 2),
                  gradzip.Compressor("qsgd:bits=2", seed=12).encode(x, 5, 2, 1)):
        assert bytes(other.numpy()) != same


@pytest.mark.parametrize("spec", ["ef+topk:ratio=0.1", "dgc:momentum=0.9+dgc:ratio=0.05", "ef21+sign"])
def test_state_dict_round_trip_continues_with_identical_messages(spec):
    a = gradzip.Compressor(spec)
    for step in range(3):
        a.encode(normal(400, step), step=step, bucket=2)
    b = gradzip.Compressor(spec)
    b.load_state_dict(a.state_dict())
    for step in range(3, 5):
        x = normal(400, step)
        assert bytes(a.encode(x, step=step, bucket=2).numpy()) == bytes(b.encode(x, step=step, bucket=2).numpy())


def test_load_state_dict_of_another_spec_names_both():
    state = gradzip.Compressor("ef+topk:ratio=0.1").state_dict()
    with pytest.raises(gradzip.SpecError, match="ef\\+topk.*ef\\+sign"):
        gradzip.Compressor("ef+sign").load_state_dict(state)


def test_out_buffer_is_reused_and_bytes_objects_decode():
    c = gradzip.Compressor("int8")
    buf = torch.empty(c.max_encoded_bytes(100) + 8, dtype=torch.uint8)
    msg = c.encode(normal(100), out=buf)
    assert msg.data_ptr() == buf.data_ptr()
    assert torch.equal(c.decode(bytes(msg.numpy())), c.decode(msg))


def test_arguments_are_checked():
    c = gradzip.Compressor("fp16")
    with pytest.raises(TypeError, match="float32"):
        c.encode(torch.zeros(4, dtype=torch.float64))
    with pytest.raises(TypeError, match="uint8"):
        c.decode(torch.zeros(4))
    with pytest.raises(ValueError, match="contiguous"):
        c.decode_add(c.encode(torch.zeros(8)), torch.zeros(4, 2).t())
    with pytest.raises(ValueError, match="bytes"):
        c.encode(torch.zeros(100), out=torch.empty(10, dtype=torch.uint8))


def test_registry_lists_codecs_and_memories_with_parameters():
    reg = {e["name"]: e for e in gradzip.compressors()}
    assert reg["qsgd"]["kind"] == "codec" and reg["ef"]["kind"] == "memory"
    bits = {p["name"]: p for p in reg["qsgd"]["params"]}["bits"]
    assert bits["kind"] == "int" and bits["allowed"] == "integer 2..8"
    assert "qsgd" in gradzip.describe()
