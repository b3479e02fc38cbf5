import torch

from zrenie.data.base import InMemoryDataset
from zrenie.data.loading import EpochBatches, Normalize, PKBatches, TensorLoader

CPU = torch.device("cpu")


def _loader(ds, batch_size, shuffle=False, drop_last=False, rank=0, world=1, weights=None):
    sampler = EpochBatches(len(ds), batch_size, shuffle, drop_last, seed=0, rank=rank, world=world, weights=weights)
    return TensorLoader(ds, CPU, Normalize((0.0,), (1.0,), CPU), sampler)


def _dataset(n=50):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return InMemoryDataset(images, torch.arange(n) % 3, ["a", "b", "c"])


def _ids(loader):
    """The sample index each batch holds (image i is filled with the value i / 255)."""
    return [int(v) for batch in loader for v in batch["image"][:, 0, 0, 0].mul(255).round()]


def test_eval_shards_cover_every_sample_once():
    ds = _dataset()
    seen = []
    for rank in range(3):
        loader = _loader(ds, 8, rank=rank, world=3)
        seen += _ids(loader)
        assert [int(i) for b in loader for i in b["index"]] == _ids(loader)  # "index" names the sample
    assert sorted(seen) == list(range(50))


def test_train_shards_are_equal_disjoint_and_reshuffled_per_epoch():
    ds = _dataset()
    loaders = [_loader(ds, 8, shuffle=True, drop_last=True, rank=r, world=2) for r in range(2)]
    a, b = _ids(loaders[0]), _ids(loaders[1])
    assert len(a) == len(b) == 24 and not set(a) & set(b)
    loaders[0].set_epoch(1)
    assert _ids(loaders[0]) != a


def test_skip_resumes_the_same_batches():
    loader = _loader(_dataset(), 8, shuffle=True, drop_last=True)
    full = _ids(loader)
    loader.skip(2)
    assert _ids(loader) == full[16:]


def test_balanced_sampler_draws_classes_equally():
    from zrenie.data.loading import balanced_sample_weights

    targets = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    ds = InMemoryDataset(torch.zeros(1000, 1, 1, 1, dtype=torch.uint8), targets, ["a", "b", "c"])
    loader = _loader(ds, 100, shuffle=True, weights=balanced_sample_weights(ds.labels))
    counts = torch.bincount(torch.cat([b["target"] for b in loader]), minlength=3)
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


def test_pk_batches_hold_p_classes_of_k_and_shard_whole_batches():
    labels = torch.arange(60) % 6  # 6 classes of 10
    per_rank = [PKBatches(labels, p=3, k=4, seed=0, rank=r, world=2).batches(epoch=0) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1]) == 2  # 60 // 12 = 5 batches, 2 whole ones per rank
    for batch in per_rank[0] + per_rank[1]:
        classes, counts = torch.unique(labels[batch], return_counts=True)
        assert len(batch) == 12 and len(classes) == 3 and counts.tolist() == [4, 4, 4]
        assert len(set(batch.tolist())) == 12  # k distinct samples of a class that has k or more
    everything = PKBatches(labels, p=3, k=4, seed=0).batches(epoch=0)
    assert [b.tolist() for b in per_rank[0]] == [b.tolist() for b in everything[0:4:2]]
    assert PKBatches(labels, 3, 4, seed=0).batches(1)[0].tolist() != everything[0].tolist()


def test_masks_and_boxes_ride_along_in_the_batch():
    images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    masks = torch.arange(4, dtype=torch.uint8).view(4, 1, 1).expand(4, 8, 8).contiguous()
    seg = _loader(InMemoryDataset(images, masks, ["bg", "a", "b", "c"]), 2)
    batch = next(iter(seg))
    assert batch["target"].dtype == torch.long and batch["target"][:, 0, 0].tolist() == [0, 1]
    boxes = [{"boxes": torch.tensor([[0.0, 0, 2, 2]] * (i + 1)), "labels": torch.zeros(i + 1, dtype=torch.long)}
             for i in range(4)]
    det = _loader(InMemoryDataset(images, boxes, ["a"]), 3)
    first = next(iter(det))
    assert [len(t["boxes"]) for t in first["target"]] == [1, 2, 3]  # ragged: one tensor per image


def test_augmented_in_memory_batches_keep_masks_on_their_pixels():
    """Images whose red channel encodes the class map: after the device-side crop and flip, the class the
    mask gives each pixel is still the one its colour says (255 where the crop padded the mask)."""
    from zrenie.data.batch_aug import BatchAugment

    g = torch.Generator().manual_seed(0)
    masks = torch.randint(0, 4, (16, 12, 12), generator=g, dtype=torch.uint8)
    images = (masks * 60).unsqueeze(1).expand(16, 3, 12, 12).contiguous()
    sampler = EpochBatches(16, 8, shuffle=True, drop_last=True, seed=0)
    loader = TensorLoader(InMemoryDataset(images, masks, ["bg", "a", "b", "c"]), CPU, None, sampler,
                          augment=BatchAugment("light", 12, hflip=True))
    moved = 0
    for batch in loader:
        x, m = batch["image"], batch["target"]
        assert torch.equal(x[:, 0].mul(255).round().div(60).round().long(), m)
        moved += int((m != masks[batch["index"]].long()).any())
    assert moved  # the augmentation did move things


def test_clips_load_and_augment_as_one_unit():
    """(N, T, C, H, W) clips: batches stay 5-D, and the crop and flip are the same for every frame."""
    from zrenie.data.batch_aug import BatchAugment

    frame = torch.randint(0, 256, (1, 3, 10, 10), dtype=torch.uint8)
    clips = frame.expand(6, 4, 3, 10, 10).contiguous()  # every frame of every clip is the same picture
    sampler = EpochBatches(6, 3, shuffle=True, drop_last=True, seed=0)
    loader = TensorLoader(InMemoryDataset(clips, torch.arange(6) % 2, ["a", "b"]), CPU, None, sampler,
                          augment=BatchAugment("standard", 10, hflip=True))
    for batch in loader:
        x = batch["image"]
        assert x.shape == (3, 4, 3, 10, 10)
        assert torch.equal(x, x[:, :1].expand_as(x))  # frames of a clip moved together


def test_channel_stats_and_resize_treat_clip_frames_as_images():
    from zrenie.data.base import channel_stats, resize_uint8

    clips = torch.randint(0, 256, (3, 4, 3, 8, 8), dtype=torch.uint8)
    frames = clips.flatten(0, 1)
    assert channel_stats(clips) == channel_stats(frames)
    assert torch.equal(resize_uint8(clips, 5), resize_uint8(frames, 5).view(3, 4, 3, 5, 5))


def test_a_file_that_breaks_after_indexing_is_an_error_naming_it(tmp_path):
    """Serving the next image in its place would attach this index's prediction to the wrong file."""
    import pytest
    from PIL import Image

    from zrenie.data.base import FileDataset
    from zrenie.errors import DataError

    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (4, 4), (i * 50, 0, 0)).save(paths[-1])
    ds = FileDataset([(p, 0) for p in paths], ["a"])
    (tmp_path / "1.png").write_bytes(b"broken")
    with pytest.raises(DataError, match="1.png"):
        ds[1]
    assert ds[2][0][0, 0, 0].item() == pytest.approx(100 / 255)


def test_datasets_serve_the_target_kinds_they_declare():
    import pytest

    from zrenie.config import DataConfig
    from zrenie.data.catalog import list_datasets, open_splits
    from zrenie.errors import DataError

    cfg = DataConfig(name="shapes", num_samples=40, size=32, num_classes=3)
    seg, det = open_splits(cfg, target="mask"), open_splits(cfg, target="boxes")
    assert seg.classes == ["background", "circle", "square", "triangle"] and det.classes == seg.classes[1:]
    image, mask = seg.train[0]
    assert mask.shape == image.shape[1:] and int(mask.max()) <= 3
    _, boxes = det.train[0]
    assert boxes["boxes"].shape[1] == 4 and len(boxes["boxes"]) == len(boxes["labels"])
    with pytest.raises(DataError, match="'digits' has class targets, not 'mask'; datasets with mask targets: coco, lesions, mask_folder, pets_seg, shapes, voc_seg"):
        open_splits(DataConfig(name="digits"), target="mask")
    assert "shapes" in list_datasets(target="boxes") and "digits" not in list_datasets(target="boxes")


def test_an_empty_split_is_one_data_error_before_training(tmp_path):
    import pytest

    import zrenie
    from zrenie.errors import DataError

    with pytest.raises(DataError, match=r"'digits': the val split is empty \(train \d+, val 0, test \d+\); raise "
                                        r"data.val_fraction \(now 0.0\)"):
        zrenie.train("classify", data="digits", **{"data.val_fraction": 0.0}, epochs=1, out=str(tmp_path / "run"),
                     progress=False)
    assert not (tmp_path / "run").exists()
