"""The DDP hook in a real 2-process torch.distributed run (gloo backend, CPU): equality
with plain DDP (identity codec), with PyTorch's fp16 hook (fp16 codec), checkpoint and
restart of the error-feedback state, and training Fashion-MNIST with top-k 1% + EF."""

import socket
import subprocess
import sys

import pytest
import torch

from conftest import TESTS, package_env

WORLD = 2
SCENARIOS = ["identity", "fp16", "resume", "fmnist", "fmnist_dense"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Runs every scenario once in 2 worker processes; {scenario: [rank0, rank1]}."""
    out = tmp_path_factory.mktemp("ddp")
    port = free_port()
    procs = [subprocess.Popen([sys.executable, str(TESTS / "ddp_worker.py"), str(r), str(WORLD), str(port), str(out)]
                              + SCENARIOS, env=package_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for r in range(WORLD)]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    for r, p in enumerate(procs):
        assert p.returncode == 0, f"rank {r} failed (rc {p.returncode}):\n{logs[r][-3000:]}"
    return {s: [torch.load(out / f"{s}.rank{r}.pt") for r in range(WORLD)] for s in SCENARIOS}


def test_identity_codec_hook_equals_plain_ddp(results):
    for r in results["identity"]:
        assert r["buckets"] >= 2 and r["step"] == 6
        assert torch.equal(r["hooked"], r["plain"])
    assert torch.equal(results["identity"][0]["hooked"], results["identity"][1]["hooked"])


def test_fp16_allreduce_hook_tracks_pytorchs_fp16_hook_and_counts_payload_bytes(results):
    r0, r1 = results["fp16"]
    assert torch.equal(r0["gradzip"], r1["gradzip"])
    # Both round gradients to binary16; gradzip divides by the world size before rounding,
    # PyTorch after, so the parameters agree to fp16 rounding, not bit for bit.
    assert torch.allclose(r0["gradzip"], r0["builtin"], rtol=0, atol=1e-3)
    assert r0["exchange"] == "allreduce"
    assert r0["bytes_sent"] == r0["bytes_on_wire"] == 2 * r0["numel"] * 6
    assert r0["dense_bytes"] == 4 * r0["numel"] * 6


def test_checkpointed_error_feedback_state_reproduces_the_run_after_restart(results):
    for r in results["resume"]:
        assert torch.equal(r["restarted"], r["continued"])
        assert not torch.equal(r["restarted_without_state"], r["continued"])


def test_topk_with_error_feedback_trains_fashion_mnist(results):
    r0, r1 = results["fmnist"]
    dense = results["fmnist_dense"][0]
    assert torch.equal(r0["params"], r1["params"])
    # Stated goal: >= 72% test accuracy after 250 steps of 2 x 64 images, within 8 points
    # of the same run with the identity codec (measured on a 2-core VM: 77.2% vs 82.2%),
    # while sending < 3% of the dense bytes (measured: 1.3%).
    assert r0["accuracy"] >= 0.72, r0["accuracy"]
    assert r0["accuracy"] >= dense["accuracy"] - 0.08, (r0["accuracy"], dense["accuracy"])
    assert r0["bytes_sent"] < 0.03 * r0["dense_bytes"]
