#!/usr/bin/env python3
"""gradzip CUDA twins vs. the PyTorch-ops (GRACE-style) equivalents, same GPU, same run.

Times both sides in one invocation, on the same GPU, with the same statistic: the median
of per-iteration CUDA-event times after untimed warm-up iterations (gradzip_bench_cuda is
run here and its `time_ms` counter is that median; the PyTorch ops are timed right after
it). Error-feedback operations on both sides start every timed iteration from the same
residual (the one a warm-up step from zero left, restored outside the timed events), so
each iteration does the same work. On one 25.6M-float random gradient:
  * a device-to-device copy (the bandwidth baseline: read 4n + write 4n bytes),
  * GRACE-style PyTorch-op compressors (Xu et al. 2021, "GRACE: A compressed communication
    framework for distributed machine learning", grace_dl/torch/compressor/*.py):
      qsgd 4-bit + EF   x = g + r; per-bucket norm; floor + bernoulli; r = x - dec
      scaled-sign + EF  x = g + r; mean|x|; sign; r = x - dec   (EF-SignSGD)
      terngrad          max|g|; bernoulli(|g| / max); sign
      int8              per-bucket max|g|; round(g * 127 / max)
      fp16              g.half()
      topk 1% + EF      x = g + r; torch.topk(|x|, k); gather; r = x; r[idx] = 0
      torch.topk 1%     torch.topk(|g|, k) alone
and the gradzip numbers of the same operations from gradzip_bench_cuda's JSON output.
Prints one table: time, GB/s under the
bytes-moved model, % of the D2D copy bandwidth measured by each side, and the speedup of
gradzip over PyTorch ops.

Bytes-moved model (DESIGN.md): encode = read g [+ read r + write r with EF] + message
bytes; decode_add = message + read acc + write acc. The PyTorch versions are charged the
same model bytes (the work the algorithm needs), so their GB/s shows how far the op-by-op
version is from the memory bound.

Usage (on a GPU host, from the build directory):
  python3 ../bench/cuda/torch_compare.py --bench ./bench/gradzip_bench_cuda [--save-json FILE]
"""
import argparse
import functools
import json
import math
import subprocess
import sys

N = 25_600_000
BUCKET = 512


def model_bytes(n, ef, message_bytes):
    return 4 * n * (3 if ef else 1) + message_bytes


def message_bytes(name, n):
    """Wire size of the gradzip message for n elements (header + params + payload)."""
    nb = math.ceil(n / BUCKET)
    sizes = {
        "identity": 40 + 4 * n,
        "fp16": 40 + 2 * n,
        "int8": 40 + 4 + 4 * nb + n,
        "qsgd4": 40 + 8 + 4 * nb + math.ceil(n * 4 / 8),
        "terngrad": 40 + 8 + 4 * nb + math.ceil(n * 2 / 8),
        "scaled-sign": 40 + 4 + 4 * nb + math.ceil(n / 8),
        # topk 1% fp32 values + u32 indices (varint is chosen only when smaller).
        "topk": 40 + 24 + 8 + 8 * math.ceil(0.01 * n),
    }
    return sizes[name]


def torch_ops(torch, g, r):
    """name -> (callable, ef, message-size key). Each callable is one compress step."""
    k = math.ceil(0.01 * g.numel())
    s = float((1 << 3) - 1)  # qsgd 4 bits: 7 levels

    def qsgd_ef():
        x = g + r
        xb = x.view(-1, BUCKET)
        norm = xb.norm(dim=1, keepdim=True)
        level = xb.abs() / norm * s
        low = level.floor()
        up = torch.rand_like(level) < (level - low)
        q = (low + up.float()) * xb.sign()
        codes = q.to(torch.int8)
        dec = codes.float() * (norm / s)
        r.copy_((xb - dec).view(-1))
        return codes, norm

    def scaled_sign_ef():
        x = g + r
        xb = x.view(-1, BUCKET)
        scale = xb.abs().mean(dim=1, keepdim=True)
        sign = xb >= 0
        dec = (sign.float() * 2 - 1) * scale
        r.copy_((xb - dec).view(-1))
        return sign, scale

    def terngrad():
        gb = g.view(-1, BUCKET)
        scalar = gb.abs().amax(dim=1, keepdim=True)
        b = torch.rand_like(gb) * scalar < gb.abs()
        return (b.to(torch.int8) * gb.sign().to(torch.int8)), scalar

    def int8():
        gb = g.view(-1, BUCKET)
        m = gb.abs().amax(dim=1, keepdim=True)
        return torch.round(gb * (127.0 / m)).to(torch.int8), m

    def fp16():
        return g.half()

    def topk_ef():
        x = g + r
        _, idx = torch.topk(x.abs(), k, sorted=False)
        vals = x[idx]
        r.copy_(x)
        r[idx] = 0
        return vals, idx

    def topk_only():
        return torch.topk(g.abs(), k, sorted=False)

    return {
        "qsgd 4-bit + EF": (qsgd_ef, True, "qsgd4", "encode/qsgd:bits=4,bucket=512/ef"),
        "scaled-sign + EF": (scaled_sign_ef, True, "scaled-sign", "encode/scaled-sign/ef"),
        "terngrad": (terngrad, False, "terngrad", "encode/terngrad"),
        "int8": (int8, False, "int8", "encode/int8"),
        "fp16": (fp16, False, "fp16", "encode/fp16"),
        "topk 1% + EF": (topk_ef, True, "topk", "encode/topk:ratio=0.01/ef"),
        "torch.topk 1% (alone)": (topk_only, False, "topk", None),
    }


def median(values):
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else 0.5 * (v[mid - 1] + v[mid])


def time_torch(torch, fn, iters, reset=None):
    """Median CUDA-event time (ms) of fn over `iters` calls after 3 untimed ones. `reset`
    runs before every call, enqueued ahead of the start event, so it is not timed."""
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    times = []
    for i in range(3 + iters):
        if reset is not None:
            reset()
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(stop))
    return median(times)


def load_gradzip(args):
    out = subprocess.run([args.bench, "--benchmark_format=json", "--benchmark_min_time=0.2"],
                         check=True, capture_output=True, text=True).stdout
    if args.save_json:
        with open(args.save_json, "w", encoding="utf-8") as f:
            f.write(out)
    data = json.loads(out)
    runs = {}
    for b in data.get("benchmarks", []):
        if "error_message" in b:
            continue
        runs[b["name"].split("/manual_time")[0]] = b
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default="./bench/gradzip_bench_cuda", help="gradzip_bench_cuda binary")
    ap.add_argument("--save-json", help="also write gradzip_bench_cuda's JSON output to this file")
    ap.add_argument("--iters", type=int, default=50)
    args = ap.parse_args()

    import torch  # imported here so that `--help` and py_compile work without torch

    if not torch.cuda.is_available():
        sys.exit("torch_compare.py needs a CUDA device (torch.cuda.is_available() is False)")
    gen = torch.Generator(device="cuda").manual_seed(12345)
    g = torch.randn(N, device="cuda", generator=gen) * 1e-3
    r = torch.zeros_like(g)
    dst = torch.empty_like(g)

    copy_ms = time_torch(torch, lambda: dst.copy_(g), args.iters)
    torch_copy_bw = 8 * N / (copy_ms * 1e-3)
    gz = load_gradzip(args)
    gz_copy = gz.get("copy_d2d")
    gz_copy_bw = gz_copy["GB_per_s"] * 1e9 if gz_copy else float("nan")

    print(f"device: {torch.cuda.get_device_name()}   n = {N} floats   torch {torch.__version__}")
    print(f"D2D copy: torch {copy_ms:.3f} ms ({torch_copy_bw / 1e9:.0f} GB/s)   gradzip-run copy "
          f"{gz_copy['time_ms'] if gz_copy else float('nan'):.3f} ms ({gz_copy_bw / 1e9:.0f} GB/s)")
    hdr = (f"{'operation':<24}{'torch ms':>10}{'GB/s':>8}{'%copy':>7}   "
           f"{'gradzip ms':>11}{'GB/s':>8}{'%copy':>7}{'speedup':>9}")
    print(hdr)
    print("-" * len(hdr))
    topk_torch_ms = None
    for name, (fn, ef, size_key, gz_name) in torch_ops(torch, g, r).items():
        reset = None
        if ef:  # as gradzip_bench_cuda: one step from a zero residual, then restore that residual
            r.zero_()
            fn()
            reset = functools.partial(r.copy_, r.clone())
        ms = time_torch(torch, fn, args.iters, reset)
        moved = model_bytes(N, ef, message_bytes(size_key, N))
        t_bw = moved / (ms * 1e-3)
        line = f"{name:<24}{ms:>10.3f}{t_bw / 1e9:>8.0f}{100 * t_bw / torch_copy_bw:>6.0f}%   "
        if name.startswith("torch.topk"):
            topk_torch_ms = ms
        b = gz.get(gz_name) if gz_name else None
        if b is not None:
            gms = b["time_ms"]
            speed = ms / gms
            line += f"{gms:>11.3f}{b['GB_per_s']:>8.0f}{b['pct_copy']:>6.0f}%{speed:>8.1f}x"
        else:
            line += f"{'n/a':>11}{'':>8}{'':>7}{'':>9}"
        print(line)
    if topk_torch_ms is not None and gz.get("encode/topk:ratio=0.01/ef"):
        gms = gz["encode/topk:ratio=0.01/ef"]["time_ms"]
        print(f"topk 1% + EF vs torch.topk alone: {topk_torch_ms / gms:.1f}x")
    for name in sorted(gz):
        if name.startswith("decode_add/"):
            b = gz[name]
            print(f"{name:<40} {b['time_ms']:.3f} ms {b['GB_per_s']:.0f} GB/s {b['pct_copy']:.0f}% of copy")
        elif name.startswith("pipeline_d2h/"):
            b = gz[name]
            print(f"{name:<40} pinned D2H {b['d2h_GB_per_s']:.1f} GB/s, {b['d2h_bytes_per_step'] / 1e6:.1f} MB/step, "
                  f"overlap {b['overlap']:.2f}")


if __name__ == "__main__":
    main()
