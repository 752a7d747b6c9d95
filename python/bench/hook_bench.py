"""DDP step time with gradzip's fp16 codec through gradzip.ddp_hook against PyTorch's
built-in fp16_compress_hook, on the same model, data and run (2 processes, gloo, CPU).
Goal: gradzip fp16 within 10% of the built-in hook's step time.

Each rank builds one DDP model per variant from the same initial weights. A round times
--steps training steps (forward, backward with the hook, SGD step) of every variant, in
an order that rotates from round to round; after --warmup untimed steps per variant the
script reports, per variant, the median over --rounds rounds of the per-step time of
rank 0, the ratio of that median to the built-in fp16 hook's, and the median of the
per-round ratios (paired: the two sides of a ratio ran seconds apart, so slow drifts of
the load on a shared machine cancel). Then the hooks alone: one call on a hand-made
bucket of --bucket-numel float32 elements (fp16 hooks only), interleaved the same way.
Variants:
  fp32 allreduce      DDP without a hook (reference)
  torch fp16 hook     torch.distributed.algorithms.ddp_comm_hooks.default_hooks.fp16_compress_hook
  gradzip fp16        gradzip.ddp_hook("fp16") (all_reduce of the fp16 payload)
  gradzip ef+topk 1%  gradzip.ddp_hook("ef+topk:ratio=0.01") (all_gather; for scale)

usage: PYTHONPATH=build/python /usr/bin/python3 python/bench/hook_bench.py
           [--width 1024] [--depth 3] [--batch 64] [--steps 10] [--rounds 9] [--warmup 3]
           [--bucket-numel 4000000]
"""

import argparse
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel as DDP

import gradzip

VARIANTS = ["fp32 allreduce", "torch fp16 hook", "gradzip fp16", "gradzip ef+topk 1%"]


def build(variant, args):
    torch.manual_seed(0)
    layers, width = [], 784
    for _ in range(args.depth):
        layers += [torch.nn.Linear(width, args.width), torch.nn.ReLU()]
        width = args.width
    model = DDP(torch.nn.Sequential(*layers, torch.nn.Linear(width, 10)))
    if variant == "torch fp16 hook":
        model.register_comm_hook(None, default_hooks.fp16_compress_hook)
    elif variant == "gradzip fp16":
        gradzip.ddp_hook("fp16").register(model)
    elif variant == "gradzip ef+topk 1%":
        gradzip.ddp_hook("ef+topk:ratio=0.01").register(model)
    return model, torch.optim.SGD(model.parameters(), lr=0.01)


def run_steps(model, opt, x, y, steps):
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return (time.perf_counter() - start) / steps


class Bucket:
    """The part of dist.GradBucket that the hooks read."""

    def __init__(self, buffer, params):
        self._buffer, self._params = buffer, params

    def buffer(self):
        return self._buffer

    def index(self):
        return 0

    def is_last(self):
        return True

    def parameters(self):
        return self._params


def hooks_alone(rank, args):
    """Per-call time of the two fp16 hooks on one bucket, interleaved rounds."""
    grad = torch.randn(args.bucket_numel, generator=torch.Generator().manual_seed(rank))
    bucket = Bucket(grad.clone(), [torch.nn.Parameter(torch.empty(args.bucket_numel))])
    ours = gradzip.ddp_hook("fp16")
    calls = {"torch fp16 hook": lambda: default_hooks.fp16_compress_hook(None, bucket),
             "gradzip fp16": lambda: gradzip.comm_hook(ours, bucket)}
    times = {v: [] for v in calls}
    for r in range(args.rounds + 1):
        for v in (list(calls) if r % 2 else list(calls)[::-1]):
            dist.barrier()
            start = time.perf_counter()
            for _ in range(args.steps):
                bucket.buffer().copy_(grad)
                calls[v]().wait()
            if r:  # round 0 warms up
                times[v].append((time.perf_counter() - start) / args.steps)
    return times


def report(times, unit):
    base = times["torch fp16 hook"]
    for v, ts in times.items():
        m = statistics.median(ts)
        paired = statistics.median(t / b for t, b in zip(ts, base))
        print(f"{v:20} {m * 1e3:8.2f} {unit}  {m / statistics.median(base):6.3f} x torch fp16 hook, "
              f"paired {paired:6.3f}   (rounds: {' '.join(f'{t * 1e3:.1f}' for t in ts)})")


def worker(rank, world, port, args):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    g = torch.Generator().manual_seed(rank)
    x, y = torch.randn(args.batch, 784, generator=g), torch.randint(10, (args.batch,), generator=g)
    models = {v: build(v, args) for v in VARIANTS}
    for model, opt in models.values():
        run_steps(model, opt, x, y, args.warmup)
    times = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
        for v in order:
            dist.barrier()
            times[v].append(run_steps(*models[v], x, y, args.steps))
    alone = hooks_alone(rank, args)
    if rank == 0:
        numel = sum(p.numel() for p in models["fp32 allreduce"][0].parameters())
        print(f"torch {torch.__version__}; MLP 784-{args.width}x{args.depth}-10 ({numel / 1e6:.2f} M params, DDP's "
              f"default buckets), batch {args.batch}, {world} ranks, gloo; median of {args.rounds} rounds x "
              f"{args.steps} steps")
        report(times, "ms/step")
        print(f"hooks alone, one bucket of {args.bucket_numel} float32; median of {args.rounds} rounds x "
              f"{args.steps} calls")
        report(alone, "ms/call")
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--bucket-numel", type=int, default=4_000_000)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(2, port, args), nprocs=2)


if __name__ == "__main__":
    main()
