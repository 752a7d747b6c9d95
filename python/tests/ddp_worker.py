"""One rank of the 2-process DDP scenarios of test_ddp.py (gloo backend, CPU).

usage: ddp_worker.py RANK WORLD PORT OUTDIR SCENARIO...
Each scenario writes OUTDIR/<scenario>.rank<R>.pt (a dict of tensors and numbers) that
the test compares across models and ranks. Batches depend on (rank, step) only, so two
models trained side by side see the same data.
"""

import copy
import gzip
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel as DDP

import gradzip

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def flat_params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def mlp(sizes, seed=0):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def synthetic_batch(rank, step, features=64, classes=10, batch=32):
    g = torch.Generator().manual_seed(1000 * rank + step)
    return torch.randn(batch, features, generator=g), torch.randint(classes, (batch,), generator=g)


def train(model, steps, rank, first_step=0, opt=None, lr=0.05):
    opt = opt or torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for step in range(first_step, first_step + steps):
        x, y = synthetic_batch(rank, step)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return opt


def scenario_identity(rank):
    """Plain DDP vs the gradzip hook with the identity codec, several buckets (>1 MB model,
    0.25 MB buckets), 6 steps: parameters must be equal."""
    sizes = [64, 600, 600, 10]
    plain = DDP(mlp(sizes), bucket_cap_mb=0.25)
    hooked = DDP(mlp(sizes), bucket_cap_mb=0.25)
    hook = gradzip.ddp_hook("identity").register(hooked)
    train(plain, 6, rank)
    train(hooked, 6, rank)
    return {"plain": flat_params(plain), "hooked": flat_params(hooked), "buckets": len(hook._layouts),
            "step": hook.step}


def scenario_fp16(rank):
    """gradzip fp16 (payload all_reduce) vs PyTorch's fp16_compress_hook, 6 steps."""
    sizes = [64, 256, 10]
    builtin = DDP(mlp(sizes))
    builtin.register_comm_hook(None, default_hooks.fp16_compress_hook)
    ours = DDP(mlp(sizes))
    hook = gradzip.ddp_hook("fp16").register(ours)
    train(builtin, 6, rank)
    train(ours, 6, rank)
    numel = sum(p.numel() for p in ours.parameters())
    return {"builtin": flat_params(builtin), "gradzip": flat_params(ours), "numel": numel, **hook.stats()}


def scenario_resume(rank):
    """ef+topk: 3 steps, checkpoint (model, optimizer, hook state of every rank), 3 more;
    a fresh process-like restart from the checkpoint must reproduce the last 3 steps, and a
    restart without the hook state must not."""
    sizes, spec = [64, 128, 10], "ef+topk:ratio=0.05"
    model = DDP(mlp(sizes))
    hook = gradzip.ddp_hook(spec).register(model)
    opt = train(model, 3, rank)
    ckpt = copy.deepcopy({"model": model.module.state_dict(), "opt": opt.state_dict(),
                          "gradzip": hook.state_dict(gather=True)})
    train(model, 3, rank, first_step=3, opt=opt)
    out = {"continued": flat_params(model)}
    for load_hook_state in (True, False):
        net = mlp(sizes, seed=1)
        net.load_state_dict(ckpt["model"])
        restarted = DDP(net)
        hook2 = gradzip.ddp_hook(spec).register(restarted)
        if load_hook_state:
            hook2.load_state_dict(ckpt["gradzip"])
        opt2 = torch.optim.SGD(restarted.parameters(), lr=0.05, momentum=0.9)
        opt2.load_state_dict(ckpt["opt"])
        train(restarted, 3, rank, first_step=3, opt=opt2)
        out["restarted" if load_hook_state else "restarted_without_state"] = flat_params(restarted)
    return out


def idx_file(name, header):
    with gzip.open(FMNIST / f"{name}-ubyte.gz") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)[header:]


def scenario_fmnist(rank, spec="ef+topk:ratio=0.01", steps=250, batch=64):
    """ef+topk 1% trains a 784-128-10 MLP on Fashion-MNIST (each rank samples its own
    batches from the 60k training images); accuracy on the first 5000 test images."""
    x = idx_file("train-images-idx3", 16).view(-1, 784).float().div_(255)
    y = idx_file("train-labels-idx1", 8).long()
    model = DDP(mlp([784, 128, 10]))
    hook = gradzip.ddp_hook(spec).register(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(rank)
    for _ in range(steps):
        i = torch.randint(len(y), (batch,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    tx = idx_file("t10k-images-idx3", 16).view(-1, 784)[:5000].float().div_(255)
    ty = idx_file("t10k-labels-idx1", 8).long()[:5000]
    with torch.no_grad():
        accuracy = (model.module(tx).argmax(1) == ty).float().mean().item()
    return {"accuracy": accuracy, "params": flat_params(model), **hook.stats()}


def scenario_fmnist_dense(rank):
    """The same run with the identity codec: the accuracy top-k 1% is compared with."""
    return scenario_fmnist(rank, spec="identity")


def main():
    rank, world, port, outdir = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    for name in sys.argv[5:]:
        result = globals()[f"scenario_{name}"](rank)
        torch.save(result, outdir / f"{name}.rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
