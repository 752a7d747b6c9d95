"""gradzip.ddp_hook: a DistributedDataParallel communication hook for any gradzip codec.

Per bucket and step, on every rank r of a world of W:
  1. g = bucket / W (so the exchanged values are already averaged, as in PyTorch's hooks);
  2. message = Compressor.encode(g, step, worker=r, bucket=index): the memory (error
     feedback) is kept per bucket, the compensated vector overwrites the bucket in place;
  3. exchange, either
       "allgather" (any codec): all_gather the message lengths, then all_gather the
         messages padded to the longest; decode_add every rank's message in rank order
         into a zeroed bucket (the result is bitwise the same on every rank), or
       "allreduce" (fp16, bf16): all_reduce the message's 16-bit payload (the codec's
         payload is exactly n little-endian fp16/bf16 values) and widen it to fp32.
  4. memory "ef21" sends increments of a gradient estimate (quant/memory/ef21.cc): the
     hook keeps the receiver's aggregate per bucket and returns it.
Bytes are counted per rank: bytes_sent (message bytes, or payload bytes for allreduce),
bytes_on_wire (what was handed to the collectives, padding and length words included)
and dense_bytes (4 bytes per element: what the default fp32 allreduce hands over).

Error-feedback state is kept per bucket but saved per parameter (state_dict), so it
survives DDP's bucket rebuild after the first iteration and a restart whose buckets
differ; parameters are named after the model when the hook is registered with
``hook.register(ddp_model)``. Residuals differ between ranks: save each rank's
state_dict, or ``state_dict(gather=True)`` for one object holding every rank's.
"""

import warnings

import torch
import torch.distributed as dist

from .compressor import Compressor
from .errors import SpecError

__all__ = ["DDPHook", "comm_hook", "ddp_hook"]

_ALLREDUCE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def ddp_hook(spec, *, seed=0, exchange="auto", process_group=None):
    """A DDPHook for ``spec`` (e.g. "ef+topk:ratio=0.01"). ``exchange``: "auto" (all_reduce
    for fp16/bf16, all_gather otherwise), "allgather" or "allreduce". Register it with
    ``hook.register(ddp_model)`` or ``ddp_model.register_comm_hook(hook, gradzip.comm_hook)``."""
    return DDPHook(spec, seed=seed, exchange=exchange, process_group=process_group)


def comm_hook(state, bucket):
    """The function to hand to DistributedDataParallel.register_comm_hook, with a DDPHook
    as its state."""
    return state.run(bucket)


class DDPHook:
    def __init__(self, spec, *, seed=0, exchange="auto", process_group=None):
        self.compressor = Compressor(spec, seed)
        codec = self.compressor.codec
        if exchange not in ("auto", "allgather", "allreduce"):
            raise SpecError(f"exchange='{exchange}' is not allowed; allowed: one of auto|allgather|allreduce")
        if exchange == "allreduce" and codec not in _ALLREDUCE_DTYPES:
            raise SpecError(f"exchange='allreduce' needs codec fp16 or bf16 (a sum of their payloads is "
                            f"meaningful), got '{codec}'; use exchange='allgather'")
        self._ef21 = self.compressor.memory_spec.split(":", 1)[0] == "ef21"
        self.exchange = "allreduce" if codec in _ALLREDUCE_DTYPES and exchange != "allgather" else "allgather"
        if self._ef21 and self.exchange == "allreduce":
            raise SpecError("memory 'ef21' sends increments: use exchange='allgather'")
        self._requested = exchange
        self.process_group = process_group
        self.step = 0
        self.bytes_sent = 0
        self.bytes_on_wire = 0
        self.dense_bytes = 0
        self._names = {}  # id(parameter) -> name (from register)
        self._layouts = {}  # bucket index -> tuple of (key, export name, numel) (see _layout)
        self._pending = {}  # key or export name -> state pieces waiting for their bucket
        self._aggregate = {}  # bucket index -> ef21 receiver estimate
        self._send = {}  # bucket index -> reusable message buffer
        self._recv = {}  # bucket index -> reusable gather buffer

    def register(self, ddp_model):
        """Registers this hook on a DistributedDataParallel model; names the state of each
        parameter after the model's parameter names (stable across restarts)."""
        self._names = {id(p): name for name, p in ddp_model.module.named_parameters()}
        ddp_model.register_comm_hook(self, comm_hook)
        return self

    def stats(self):
        return {"step": self.step, "bytes_sent": self.bytes_sent, "bytes_on_wire": self.bytes_on_wire,
                "dense_bytes": self.dense_bytes, "exchange": self.exchange, "spec": self.compressor.spec}

    # ---- the hook ------------------------------------------------------------------

    def run(self, bucket):
        group = self.process_group if self.process_group is not None else dist.group.WORLD
        world, rank = dist.get_world_size(group), dist.get_rank(group)
        buf = bucket.buffer()
        if buf.dtype != torch.float32:
            raise TypeError(f"gradzip.ddp_hook compresses float32 gradients, the bucket holds {buf.dtype}")
        index = bucket.index()
        if self.exchange == "allreduce" and self.compressor.codec == "bf16" and dist.get_backend(group) == "gloo":
            # Gloo has no bfloat16 sum (PyTorch 1.13 refuses it): auto falls back to all_gather.
            if self._requested == "allreduce":
                raise SpecError("exchange='allreduce' with bf16 needs a backend that sums bfloat16 (nccl); "
                                "the gloo backend does not: use exchange='auto' or 'allgather'")
            self.exchange = "allgather"
        self._track_layout(index, bucket.parameters(), buf)
        buf.div_(world)
        self.dense_bytes += 4 * buf.numel()
        if self.exchange == "allreduce":
            fut = self._allreduce(buf, index, rank, group)
        else:
            fut = self._allgather(buf, index, rank, world, group)
        if bucket.is_last():
            self.step += 1
        return fut

    def _buffer(self, cache, index, nbytes, device):
        b = cache.get(index)
        if b is None or b.numel() < nbytes or b.device != device:
            b = torch.empty(nbytes, dtype=torch.uint8, device=device)
            cache[index] = b
        return b

    def _allreduce(self, buf, index, rank, group):
        n = buf.numel()
        out = self._buffer(self._send, index, self.compressor.max_encoded_bytes(n), buf.device)
        msg = self.compressor.encode(buf, self.step, rank, index, out=out, in_place=True)
        payload = msg[msg.numel() - 2 * n:].view(_ALLREDUCE_DTYPES[self.compressor.codec])
        self.bytes_sent += 2 * n
        self.bytes_on_wire += 2 * n
        fut = dist.all_reduce(payload, group=group, async_op=True).get_future()

        def widen(_):
            buf.copy_(payload)
            return buf

        return fut.then(widen)

    def _allgather(self, buf, index, rank, world, group):
        n, device = buf.numel(), buf.device
        out = self._buffer(self._send, index, self.compressor.max_encoded_bytes(n), device)
        msg = self.compressor.encode(buf, self.step, rank, index, out=out, in_place=True)
        # Sparse codecs' messages differ in length between ranks: exchange lengths first
        # (one small blocking collective), then pad every message to the longest.
        mine = torch.tensor([msg.numel()], dtype=torch.int64, device=device)
        lengths = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(lengths, mine, group=group)
        lengths = [int(t.item()) for t in lengths]
        width = max(lengths)
        recv = self._buffer(self._recv, index, world * width, device)[:world * width]
        fut = dist.all_gather(list(recv.split(width)), out[:width], group=group, async_op=True).get_future()
        self.bytes_sent += msg.numel()
        self.bytes_on_wire += width + mine.element_size()

        def decode(_):
            acc = buf
            if self._ef21:
                acc = self._aggregate.get(index)
                if acc is None or acc.numel() != n or acc.device != device:
                    acc = self._aggregate[index] = torch.zeros(n, dtype=torch.float32, device=device)
            else:
                acc.zero_()
            for r in range(world):  # rank order: every rank sums in the same order
                self.compressor.decode_add(recv[r * width:r * width + lengths[r]], acc)
            if acc is not buf:
                buf.copy_(acc)
            return buf

        return fut.then(decode)

    # ---- state that follows parameters ---------------------------------------------

    def _layout(self, index, params):
        """(key, export name, numel) per parameter of a bucket. key follows the parameter
        within this process (its name, else its id); the export name keys state_dict (its
        name, else its position "bucket<index>.param<j>", valid for an unchanged layout)."""
        out = []
        for j, p in enumerate(params):
            name = self._names.get(id(p))
            out.append((name or id(p), name or f"bucket{index}.param{j}", p.numel()))
        return tuple(out)

    def _track_layout(self, index, params, buf):
        layout = self._layout(index, params)
        old = self._layouts.get(index)
        if old == layout:
            return
        if sum(numel for _, _, numel in layout) != buf.numel():
            warnings.warn("gradzip.ddp_hook: bucket buffer is not its parameters back to back; "
                          "error-feedback state will not follow parameters across bucket changes")
        if old is not None:  # DDP rebuilt its buckets: every state goes back to its parameters
            self._pending.update(self._per_parameter(export=False))
            self.compressor.reset()
            self._aggregate.clear()
            self._layouts.clear()
        self._layouts[index] = layout
        self._assemble(index, layout, buf.device)

    def _per_parameter(self, export):
        """Every bucket's state split into per-parameter pieces (CPU tensors), keyed by
        export name (export=True) or by key."""
        pieces = {}
        for index, layout in self._layouts.items():
            state = self.compressor.bucket_state(index) or {}
            if index in self._aggregate:
                state = dict(state, aggregate=self._aggregate[index])
            offset = 0
            for key, export_name, numel in layout:
                piece = {}
                for name in ("residual", "momentum", "aggregate"):
                    t = state.get(name)
                    if t is not None and t.numel() >= offset + numel:
                        piece[name] = t[offset:offset + numel].detach().cpu().clone()
                if piece:
                    piece["steps"] = state.get("steps", 0)
                    pieces[export_name if export else key] = piece
                offset += numel
        return pieces

    def _assemble(self, index, layout, device):
        """Builds a bucket's state from pending per-parameter pieces (zeros where none)."""
        found = [self._pending.pop(key, None) or self._pending.pop(export_name, None)
                 for key, export_name, _ in layout]
        if not any(found):
            return
        n = sum(numel for _, _, numel in layout)
        vectors, steps, offset = {}, 0, 0
        for piece, (_, _, numel) in zip(found, layout):
            for name, t in (piece or {}).items():
                if name == "steps":
                    steps = max(steps, t)
                    continue
                v = vectors.setdefault(name, torch.zeros(n, dtype=torch.float32, device=device))
                v[offset:offset + numel].copy_(t)
            offset += numel
        empty = torch.zeros(0, dtype=torch.float32, device=device)
        if "residual" in vectors or "momentum" in vectors:
            self.compressor.set_bucket_state(index, {"residual": vectors.get("residual", empty),
                                                     "momentum": vectors.get("momentum", empty), "steps": steps})
        if "aggregate" in vectors:
            self._aggregate[index] = vectors["aggregate"]

    def state_dict(self, gather=False):
        """The hook's state: counters and the per-parameter error-feedback state of this
        rank (CPU tensors). ``gather=True`` (a collective: call it on every rank) returns
        {"ranks": [state of rank 0, rank 1, ...]} on every rank."""
        group = self.process_group if self.process_group is not None else dist.group.WORLD
        params = {k: v for k, v in self._pending.items() if isinstance(k, str)}  # loaded, not yet applied
        params.update(self._per_parameter(export=True))
        state = {"spec": self.compressor.spec, "seed": self.compressor.seed, "exchange": self.exchange,
                 "step": self.step, "bytes_sent": self.bytes_sent, "bytes_on_wire": self.bytes_on_wire,
                 "dense_bytes": self.dense_bytes, "params": params}
        if not gather:
            return state
        ranks = [None] * dist.get_world_size(group)
        dist.all_gather_object(ranks, state, group=group)
        return {"ranks": ranks}

    def load_state_dict(self, state):
        """Restores state_dict() (either form; the gathered form picks this rank's entry).
        The state is applied to each bucket when the hook next sees it."""
        if "ranks" in state:
            group = self.process_group if self.process_group is not None else dist.group.WORLD
            state = state["ranks"][dist.get_rank(group)]
        if state["spec"] != self.compressor.spec:
            raise SpecError(f"state was saved by a hook for '{state['spec']}', this hook runs "
                            f"'{self.compressor.spec}'")
        self.compressor.reset()
        self._aggregate.clear()
        self._layouts.clear()
        self._pending = {key: dict(piece) for key, piece in state["params"].items()}
        for name in ("step", "bytes_sent", "bytes_on_wire", "dense_bytes"):
            setattr(self, name, int(state[name]))
