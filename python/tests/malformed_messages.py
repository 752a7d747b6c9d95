"""Feeds malformed messages to every decoder entry point; run by test_errors.py in a
child interpreter, so that a crash (a signal) shows up as a failed test instead of
taking pytest down. Prints one JSON object: per codec, how many messages decoded and
which WireError codes the others raised, plus any other exception ("unexpected").

Mutations of each golden message (tests/quant/golden): every truncation; every single
byte xor 0x01 and 0xff (caught by the checksum or the header checks); and seeded random
rewrites of header fields, params and payload, resealed with a fresh checksum so they
reach the codec's own validation (params, flags, lengths, scales, sparse indices).
"""

import json
import random
import struct
import sys

import torch

import gradzip
from golden import golden_messages

FIELDS = [(6, "<B"), (7, "<B"), (8, "<Q"), (16, "<Q"), (24, "<I"), (28, "<I"), (4, "<H")]
SENTINEL = 12345.0


def rewrite(rng, msg):
    m = bytearray(msg)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(4)
        if kind == 0:  # a header field gets a nearby, boundary or random value
            off, fmt = rng.choice(FIELDS)
            old = struct.unpack_from(fmt, m, off)[0]
            bits = 8 * struct.calcsize(fmt)
            value = rng.choice([0, 1, old - 1, old + 1, old * 2, (1 << bits) - 1, 1 << 34, rng.getrandbits(bits)])
            struct.pack_into(fmt, m, off, value % (1 << bits))
        elif kind == 1 and len(m) > 40:  # random bytes in params/payload
            for _ in range(rng.randint(1, 8)):
                m[rng.randrange(40, len(m))] = rng.randrange(256)
        elif kind == 2:  # payload grows or shrinks, header follows
            delta = rng.choice([-9, -4, -1, 1, 2, 4, 16])
            m = m + bytearray(rng.randrange(256) for _ in range(delta)) if delta > 0 else m[:max(40, len(m) + delta)]
            struct.pack_into("<Q", m, 16, max(0, len(m) - 40 - struct.unpack_from("<I", m, 24)[0]))
        else:  # params block and payload swap roles
            struct.pack_into("<I", m, 24, rng.randrange(0, min(64, len(m) - 39)))
            struct.pack_into("<Q", m, 16, max(0, len(m) - 40 - struct.unpack_from("<I", m, 24)[0]))
    t = torch.frombuffer(m, dtype=torch.uint8) if len(m) else torch.empty(0, dtype=torch.uint8)
    gradzip._gradzip.seal_message(t.data_ptr(), t.numel())
    return bytes(t.numpy())


def attempt(summary, codec, msg):
    """Decodes msg through three entry points; records the outcome of each."""
    for how in ("decode", "decode_add", "decode_any"):
        out = torch.full((37,), SENTINEL)
        try:
            if how == "decode":
                codec.decode(msg, out=out)
            elif how == "decode_add":
                codec.decode_add(msg, out, 0.5)
            else:
                gradzip.decode(msg, out=out)
            summary["ok"] += 1
        except gradzip.WireError as e:
            summary["codes"][e.code] = summary["codes"].get(e.code, 0) + 1
            if not torch.all(out == SENTINEL):
                summary["unexpected"].append(f"{how}: output written before {e.code}")
        except Exception as e:  # noqa: BLE001 - anything else is what the test looks for
            summary["unexpected"].append(f"{how}: {type(e).__name__}: {e}")


def main(rewrites_per_codec):
    rng = random.Random(20240611)
    report = {}
    for spec, msg in golden_messages():
        codec = gradzip.Compressor(spec)
        summary = {"ok": 0, "codes": {}, "unexpected": [], "resealed_codes": {}}
        for n in range(len(msg)):
            attempt(summary, codec, msg[:n])
        for i in range(len(msg)):
            for x in (0x01, 0xFF):
                attempt(summary, codec, msg[:i] + bytes([msg[i] ^ x]) + msg[i + 1:])
        before = dict(summary["codes"])
        for _ in range(rewrites_per_codec):
            attempt(summary, codec, rewrite(rng, msg))
        summary["resealed_codes"] = {k: v - before.get(k, 0) for k, v in summary["codes"].items() if v > before.get(k, 0)}
        report[spec] = summary
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
