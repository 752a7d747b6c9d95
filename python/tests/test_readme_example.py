"""The README's Python example is python/examples/train_ddp.py verbatim, and it runs:
2 processes, a few steps, a checkpoint holding every rank's error-feedback state."""

import re
import subprocess
import sys

import torch

from conftest import REPO, package_env

EXAMPLE = REPO / "python" / "examples" / "train_ddp.py"


def test_readme_quotes_the_example_file_exactly():
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    assert EXAMPLE.read_text() in blocks
    assert len(EXAMPLE.read_text().splitlines()) <= 40


def test_example_trains_a_few_steps_and_saves_a_checkpoint(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLE), "20"], cwd=tmp_path, env=package_env(),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = re.search(r"^20 steps, test accuracy (0\.\d+), sent (\d+) bytes \((\d+\.\d)% of fp32\)$", proc.stdout, re.M)
    assert line, proc.stdout
    assert float(line.group(1)) > 0.1 and float(line.group(3)) < 3.0  # learned something; top-k 1% sends little
    ckpt = torch.load(tmp_path / "checkpoint.pt")
    ranks = ckpt["gradzip"]["ranks"]
    assert len(ranks) == 2 and ranks[0]["spec"].startswith("ef+topk")
    # Named after the model's parameters, one residual per parameter, different per rank.
    assert set(ranks[0]["params"]) == set(ckpt["model"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    for name, tensor in ckpt["model"].items():
        assert ranks[0]["params"][name]["residual"].numel() == tensor.numel()
    assert not torch.equal(ranks[0]["params"]["0.weight"]["residual"], ranks[1]["params"]["0.weight"]["residual"])
