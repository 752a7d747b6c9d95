"""The golden wire vectors of tests/quant/golden (written by tests/quant/golden_test.cc).

File format: '#' comment lines, the first of which reads "# gradzip golden message: spec
<canonical spec>, 37-element golden_input(), SeedContext{seed 0x..., step 42, worker 3,
bucket 5}", then the message as hex, 32 bytes per line.
"""

import re
from pathlib import Path

import torch

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "tests" / "quant" / "golden"
SEED, STEP, WORKER, BUCKET = 0x0123456789ABCDEF, 42, 3, 5


def golden_input():
    """golden_input() of golden_test.cc: 37 exactly representable floats, both signs, -0."""
    x = []
    for i in range(37):
        v = ((i * 73) % 41 - 20) * 0.125
        v *= 0.5 ** (i % 5)
        if i % 7 == 3:
            v *= 1024.0
        x.append(v)
    x[30] = -0.0
    return torch.tensor(x, dtype=torch.float32)


def golden_messages():
    """[(canonical spec, message bytes)] for every file, sorted by file name."""
    out = []
    for path in sorted(GOLDEN_DIR.glob("*.hex")):
        lines = path.read_text().splitlines()
        header = re.match(r"# gradzip golden message: spec ([^ ]+), 37-element", lines[0])
        assert header, f"{path}: unexpected first line {lines[0]!r}"
        hexdigits = "".join(line.strip() for line in lines if line and not line.startswith("#"))
        out.append((header.group(1), bytes.fromhex(hexdigits)))
    return out
