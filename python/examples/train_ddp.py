# 2-process DDP on Fashion-MNIST; gradients cross as gradzip top-k 1% + error feedback.
# usage: python3 train_ddp.py [steps]   (PYTHONPATH=build/python; README.md "Python")
import gzip, socket, sys
import torch, torch.distributed as dist, torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP
import gradzip

def idx(name, header):  # an IDX file of /usr/share/datasets/fashion-mnist as uint8
    with gzip.open(f"/usr/share/datasets/fashion-mnist/{name}-ubyte.gz") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)[header:]

def worker(rank, world, port, steps):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    x, y = idx("train-images-idx3", 16).view(-1, 784).float() / 255, idx("train-labels-idx1", 8).long()
    model = DDP(torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)))
    hook = gradzip.ddp_hook("ef+topk:ratio=0.01").register(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        i = torch.randint(len(y), (64,))  # each rank draws its own batch
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    state = hook.state_dict(gather=True)  # every rank's residuals: save next to the model
    if rank == 0:
        torch.save({"model": model.module.state_dict(), "gradzip": state}, "checkpoint.pt")
        tx, ty = idx("t10k-images-idx3", 16).view(-1, 784).float() / 255, idx("t10k-labels-idx1", 8).long()
        with torch.no_grad():
            accuracy = (model.module(tx).argmax(1) == ty).float().mean().item()
        s = hook.stats()
        print(f"{steps} steps, test accuracy {accuracy:.3f}, sent {s['bytes_sent']} bytes "
              f"({s['bytes_sent'] / s['dense_bytes']:.1%} of fp32)")
    dist.destroy_process_group()

if __name__ == "__main__":
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(2, port, int(sys.argv[1]) if len(sys.argv) > 1 else 300), nprocs=2)
