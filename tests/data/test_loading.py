import torch

from zrenie.data.base import InMemoryDataset
from zrenie.data.loading import Normalize, TensorLoader


def _dataset(n=50):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return InMemoryDataset(images, torch.arange(n) % 3, ["a", "b", "c"])


def _ids(loader):
    """The sample index each batch holds (image i is filled with the value i / 255)."""
    return [int(v) for images, _ in loader for v in images[:, 0, 0, 0].mul(255).round()]


def test_eval_shards_cover_every_sample_once():
    ds, norm = _dataset(), Normalize((0.0,), (1.0,), torch.device("cpu"))
    seen = []
    for rank in range(3):
        loader = TensorLoader(ds, 8, torch.device("cpu"), norm, rank=rank, world=3)
        seen += _ids(loader)
    assert sorted(seen) == list(range(50))


def test_train_shards_are_equal_disjoint_and_reshuffled_per_epoch():
    ds, norm = _dataset(), Normalize((0.0,), (1.0,), torch.device("cpu"))
    loaders = [TensorLoader(ds, 8, torch.device("cpu"), norm, shuffle=True, drop_last=True, rank=r, world=2)
               for r in range(2)]
    a, b = _ids(loaders[0]), _ids(loaders[1])
    assert len(a) == len(b) == 24 and not set(a) & set(b)
    loaders[0].set_epoch(1)
    assert _ids(loaders[0]) != a


def test_skip_resumes_the_same_batches():
    ds, norm = _dataset(), Normalize((0.0,), (1.0,), torch.device("cpu"))
    loader = TensorLoader(ds, 8, torch.device("cpu"), norm, shuffle=True, drop_last=True)
    full = _ids(loader)
    loader.skip(2)
    assert _ids(loader) == full[16:]


def test_balanced_sampler_draws_classes_equally():
    from zrenie.data.loading import balanced_sample_weights

    targets = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    ds = InMemoryDataset(torch.zeros(1000, 1, 1, 1, dtype=torch.uint8), targets, ["a", "b", "c"])
    loader = TensorLoader(ds, 100, torch.device("cpu"), Normalize((0.0,), (1.0,), torch.device("cpu")),
                          shuffle=True)
    loader.sample_weights = balanced_sample_weights(targets)
    counts = torch.bincount(torch.cat([y for _, y in loader]), minlength=3)
    assert counts.sum() == 1000 and (counts > 250).all() and (counts < 420).all()


def test_subset_classes_relabels_every_split():
    from zrenie.config import DataConfig
    from zrenie.data.catalog import open_splits

    full = open_splits(DataConfig(name="digits"))
    sub = open_splits(DataConfig(name="digits", subset_classes=["7", 3]))
    assert sub.classes == ["7", "3"]
    for split in ("train", "val", "test"):
        a, b = getattr(full, split), getattr(sub, split)
        assert len(b) == int(((a.targets == 7) | (a.targets == 3)).sum())
        assert torch.equal(b.images[b.targets == 0], a.images[a.targets == 7])
