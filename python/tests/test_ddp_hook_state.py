"""DDPHook bookkeeping in one process (a 1-rank gloo group and hand-made buckets): the
error-feedback state follows parameters when DDP rebuilds its buckets, state_dict
round trips without a model, EF21's receiver aggregate, bf16 on gloo."""

import pytest
import torch
import torch.distributed as dist

import gradzip


@pytest.fixture(scope="module", autouse=True)
def world_of_one(tmp_path_factory):
    store = tmp_path_factory.mktemp("pg") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


class Bucket:
    """What the hook reads of a dist.GradBucket: the flat gradients of its parameters."""

    def __init__(self, index, params, grads, last=True):
        self._index, self._params, self._last = index, params, last
        self._buffer = torch.cat([g.reshape(-1) for g in grads])

    def buffer(self):
        return self._buffer

    def index(self):
        return self._index

    def parameters(self):
        return self._params

    def is_last(self):
        return self._last


def normal(n, seed):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed))


def run(hook, bucket):
    return gradzip.comm_hook(hook, bucket).wait().clone()


SPEC = "ef+topk:ratio=0.1"
SIZES = (30, 50, 20)


def layout_a_step(hook, params):
    run(hook, Bucket(1, [params[2]], [normal(20, 2)], last=False))
    run(hook, Bucket(0, [params[0], params[1]], [normal(30, 0), normal(50, 1)]))


def test_error_feedback_state_follows_parameters_when_buckets_are_rebuilt():
    params = [torch.nn.Parameter(torch.zeros(n)) for n in SIZES]
    hook = gradzip.ddp_hook(SPEC)
    layout_a_step(hook, params)
    r01, r2 = hook.compressor.bucket_state(0)["residual"], hook.compressor.bucket_state(1)["residual"]
    assert r01.abs().sum() > 0 and r2.abs().sum() > 0
    # Rebuilt layout: bucket 0 = [p2, p0], bucket 1 = [p1].
    h20 = torch.cat([normal(20, 12), normal(30, 10)])
    out = run(hook, Bucket(0, [params[2], params[0]], [h20[:20], h20[20:]], last=False))
    ref = gradzip.Compressor(SPEC)
    ref.set_bucket_state(0, {"residual": torch.cat([r2, r01[:30]]), "momentum": torch.zeros(0), "steps": 1})
    assert torch.equal(out, ref.decode(ref.encode(h20, step=1, bucket=0)))
    h1 = normal(50, 11)
    out = run(hook, Bucket(1, [params[1]], [h1]))
    ref.set_bucket_state(1, {"residual": r01[30:], "momentum": torch.zeros(0), "steps": 1})
    assert torch.equal(out, ref.decode(ref.encode(h1, step=1, bucket=1)))


def test_state_dict_round_trip_without_a_model_uses_bucket_positions():
    params = [torch.nn.Parameter(torch.zeros(n)) for n in SIZES]
    a = gradzip.ddp_hook(SPEC)
    layout_a_step(a, params)
    state = a.state_dict()
    assert set(state["params"]) == {"bucket0.param0", "bucket0.param1", "bucket1.param0"}
    b = gradzip.ddp_hook(SPEC)
    b.load_state_dict(state)
    assert b.step == a.step == 1 and b.bytes_sent == a.bytes_sent
    for hook in (a, b):
        hook.outputs = [run(hook, Bucket(1, [params[2]], [normal(20, 7)], last=False)),
                        run(hook, Bucket(0, params[:2], [normal(30, 5), normal(50, 6)]))]
    assert all(torch.equal(x, y) for x, y in zip(a.outputs, b.outputs))


def test_ef21_hook_returns_the_receiver_estimate_which_converges_to_a_fixed_gradient():
    p = torch.nn.Parameter(torch.zeros(200))
    g = normal(200, 3)
    hook = gradzip.ddp_hook("ef21+topk:ratio=0.2")
    errors = [float((run(hook, Bucket(0, [p], [g.clone()])) - g).norm()) for _ in range(8)]
    # EF21 (Richtarik et al. 2021): ||g_t - G|| <= sqrt(1 - k/n) ||g_{t-1} - G||; with
    # top-k the estimate takes the k largest missing entries each step, so after n/k = 5
    # steps it holds all of G.
    for before, after in zip(errors[:5], errors[1:6]):
        assert after <= (1 - 0.2) ** 0.5 * before + 1e-6
    assert errors[0] > 0 and errors[-1] == 0


def test_bf16_uses_allgather_on_gloo_and_says_why_for_an_explicit_allreduce():
    p = torch.nn.Parameter(torch.zeros(64))
    g = normal(64, 4)
    hook = gradzip.ddp_hook("bf16")
    assert torch.equal(run(hook, Bucket(0, [p], [g.clone()])), g.bfloat16().float())
    assert hook.exchange == "allgather"
    with pytest.raises(gradzip.SpecError, match="gloo"):
        run(gradzip.ddp_hook("bf16", exchange="allreduce"), Bucket(0, [p], [g.clone()]))
