"""recompute_bn_stats against statistics computed by hand from each batchnorm's recorded inputs.

What momentum=None accumulates, and so what every test compares with: after K batches,
`running_mean` is the mean of the K per-batch means (with equal-size batches, the mean over all
samples and pixels) and `running_var` the mean of the K per-batch *unbiased* variances. The latter
is not the variance of all samples pooled: it leaves out the spread between the batch means.
"""

from __future__ import annotations

import copy
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zrenie.engine.precise_bn import recompute_bn_stats
from zrenie.nn.transfer import FrozenBatchNorm2d


def conv_bn_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, momentum=0.3), nn.ReLU(),
                         nn.Conv2d(4, 5, 3), nn.BatchNorm2d(5))


def make_batches(count: int, batch_size: int = 6, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch_size, 3, 8, 8, generator=g) * 2 + 1 for _ in range(count)]  # (B, 3, 8, 8)


def bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def bn_stats(model: nn.Module) -> list[torch.Tensor]:
    return [t.clone() for bn in bn_layers(model) for t in (bn.running_mean, bn.running_var)]


def make_stale(model: nn.Module) -> None:
    """Statistics far from any batch's, so a result that forgot to reset them shows."""
    for bn in bn_layers(model):
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(7.0)
        bn.num_batches_tracked.fill_(1000)


def stats_by_hand(model: nn.Module, batches: list[torch.Tensor]) -> list[torch.Tensor]:
    """(mean over all samples and pixels, mean over batches of the unbiased per-batch variance) per batchnorm.

    The inputs are recorded with forward hooks on a float64 copy run in train mode, where each
    batchnorm normalises with its batch's statistics, so the copy's running buffers play no part.
    """
    reference = copy.deepcopy(model).double().train()
    inputs = {bn: [] for bn in bn_layers(reference)}
    for bn in inputs:
        bn.register_forward_hook(lambda m, args, out: inputs[m].append(args[0]))
    with torch.no_grad():
        for batch in batches:
            reference(batch.double())
    expected = []
    for xs in inputs.values():  # xs: K tensors (B, C, H, W)
        expected.append(torch.cat(xs).mean(dim=(0, 2, 3)))
        expected.append(torch.stack([x.var(dim=(0, 2, 3), unbiased=True) for x in xs]).mean(dim=0))
    return expected


def assert_stats_close(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a.double(), e.double(), rtol=1e-5, atol=1e-5)


def test_stats_are_the_average_over_batches_and_modes_come_back():
    model = conv_bn_model()
    make_stale(model)
    model.eval()
    model[2].train()  # a mixed state, which a plain model.train()/eval() afterwards would not restore
    modes = [m.training for m in model.modules()]
    batches = make_batches(4)
    expected = stats_by_hand(model, batches)
    assert recompute_bn_stats(model, batches) == 4
    assert_stats_close(bn_stats(model), expected)
    assert [m.training for m in model.modules()] == modes
    assert [bn.momentum for bn in bn_layers(model)] == [0.3, 0.1]
    assert [int(bn.num_batches_tracked) for bn in bn_layers(model)] == [4, 4]


@pytest.mark.parametrize("layer, shape", [
    (nn.BatchNorm1d(3), (16, 3)),
    (nn.BatchNorm1d(3), (8, 3, 5)),
    (nn.BatchNorm3d(3), (4, 3, 2, 3, 3)),
    (nn.SyncBatchNorm(3), (4, 3, 5, 5)),  # without a process group it normalises like BatchNorm2d
], ids=["bn1d-NC", "bn1d-NCL", "bn3d", "syncbn"])
def test_every_batchnorm_kind(layer, shape):
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(*shape, generator=g) * 3 - 2 for _ in range(3)]
    dims = [d for d in range(len(shape)) if d != 1]  # all but the channel dimension
    recompute_bn_stats(layer, batches, forward=lambda m, b: m(b))
    torch.testing.assert_close(layer.running_mean, torch.cat(batches).mean(dim=dims))
    torch.testing.assert_close(layer.running_var, torch.stack([b.var(dim=dims) for b in batches]).mean(dim=0))


def test_frozen_batchnorm_is_untouched():
    model = conv_bn_model()
    frozen = FrozenBatchNorm2d(4, momentum=0.2).eval()  # as set_trainable leaves it
    frozen.running_mean.copy_(torch.arange(4.0))
    frozen.running_var.copy_(torch.arange(1.0, 5.0))
    model[1] = frozen
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    batches = make_batches(3)
    assert recompute_bn_stats(model, batches) == 3
    assert all(torch.equal(v, before[k]) for k, v in frozen.state_dict().items())
    assert frozen.momentum == 0.2 and not frozen.training
    # The live batchnorm after it still gets the average of what it saw (the frozen one normalising with its own stats).
    assert_stats_close(bn_stats(model)[2:], stats_by_hand(model, batches)[2:])


def test_global_rng_is_not_consumed_with_dropout_and_a_shuffling_loader():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.BatchNorm1d(8))
    loader = DataLoader(TensorDataset(torch.randn(32, 4)), batch_size=8, shuffle=True)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    assert recompute_bn_stats(model, loader, forward=lambda m, batch: m(batch[0])) == 4
    assert torch.equal(torch.get_rng_state(), state)
    first = bn_stats(model)
    recompute_bn_stats(model, loader, forward=lambda m, batch: m(batch[0]))
    assert all(torch.equal(a, b) for a, b in zip(bn_stats(model), first))  # same RNG state, same dropout masks
    model.train()(torch.randn(8, 4))  # the check can fail: a plain train-mode pass does move the RNG
    assert not torch.equal(torch.get_rng_state(), state)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_rng_is_not_consumed():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.BatchNorm1d(8)).cuda()
    batches = [torch.randn(8, 4, device="cuda") for _ in range(3)]
    cpu, gpu = torch.get_rng_state(), torch.cuda.get_rng_state()
    assert recompute_bn_stats(model, batches) == 3
    assert torch.equal(torch.get_rng_state(), cpu) and torch.equal(torch.cuda.get_rng_state(), gpu)
    assert int(model[2].num_batches_tracked) == 3


def test_no_batches_or_a_failing_pass_leave_everything_as_it_was():
    model = conv_bn_model()
    make_stale(model)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert recompute_bn_stats(model, []) == 0

    def failing(m, batch):
        m(batch)
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        recompute_bn_stats(model, make_batches(2), forward=failing)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not any(m.training for m in model.modules())
    assert [bn.momentum for bn in bn_layers(model)] == [0.3, 0.1]
    assert recompute_bn_stats(nn.Linear(2, 2), make_batches(1)) == 0  # nothing to update, no pass run


# Batches split between two ranks: (rank 0's count, rank 1's count) of one global list of batches.
SPLITS = {"equal": (2, 2), "unequal": (3, 1)}


def rank_batches(rank: int, counts: tuple[int, int]) -> list[torch.Tensor]:
    batches = make_batches(sum(counts), seed=7)
    return batches[:counts[0]] if rank == 0 else batches[counts[0]:]


def _two_rank_worker(rank: int, port: int, out: str) -> None:
    """One gloo rank: recomputes on its own batches and saves (count, stats) per split."""
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        results = {}
        for name, counts in SPLITS.items():
            model = conv_bn_model()
            make_stale(model)
            results[name] = (recompute_bn_stats(model, rank_batches(rank, counts)), bn_stats(model))
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def single_process_stats(batches: list[torch.Tensor]) -> list[torch.Tensor]:
    model = conv_bn_model()
    recompute_bn_stats(model, batches)
    return bn_stats(model)


def test_two_gloo_ranks_end_with_the_average_of_their_stats(tmp_path):
    context = mp.start_processes(_two_rank_worker, args=(_free_port(), str(tmp_path)), nprocs=2,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + 120
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail("the two gloo ranks did not finish in 120 s")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, counts in SPLITS.items():
        (n0, stats0), (n1, stats1) = ranks[0][name], ranks[1][name]
        assert (n0, n1) == counts
        assert all(torch.equal(a, b) for a, b in zip(stats0, stats1))  # identical on both ranks
        single = [single_process_stats(rank_batches(r, counts)) for r in range(2)]
        # Each rank's single-process stats, weighted by its batch count: a plain average for equal counts.
        weighted = [(counts[0] * a + counts[1] * b) / sum(counts) for a, b in zip(*single)]
        assert_stats_close(stats0, weighted)
        # The same numbers as one process would get from every batch of both ranks.
        assert_stats_close(stats0, single_process_stats(make_batches(sum(counts), seed=7)))
