"""The detection mosaic: each quadrant is a resized image of the batch and its boxes follow it."""

import torch
import torch.nn.functional as F

from zrenie.data.batch_aug import mosaic


def _batch():
    images = torch.rand(4, 3, 32, 48)
    targets = [{"boxes": torch.tensor([[4.0 * i, 2, 4.0 * i + 20, 30]]), "labels": torch.tensor([i])} for i in range(4)]
    return images, targets


def test_mosaic_tiles_four_resized_images_and_moves_their_boxes():
    images, targets = _batch()
    g = torch.Generator().manual_seed(3)
    out, moved = mosaic(images, targets, g, p=1.0)
    # the same draws, in the documented order, give the layout to check against
    g = torch.Generator().manual_seed(3)
    torch.rand(4, generator=g)
    partners = torch.randint(0, 4, (4, 3), generator=g).tolist()
    centres = (0.25 + 0.5 * torch.rand(4, 2, generator=g)).tolist()
    cx, cy = round(centres[1][0] * 48), round(centres[1][1] * 32)
    src = partners[1][1]  # quadrants: the sample top-left, then its partners top-right, bottom-left, bottom-right
    expected = F.interpolate(images[src:src + 1], size=(32 - cy, cx), mode="bilinear", align_corners=False,
                             antialias=True)[0]
    torch.testing.assert_close(out[1, :, cy:, :cx], expected)
    sources = [1, *partners[1]]
    assert moved[1]["labels"].tolist() == [sources[q] for q in range(4)]
    x1, y1, x2, y2 = targets[src]["boxes"][0].tolist()
    sx, sy = cx / 48, (32 - cy) / 32
    torch.testing.assert_close(moved[1]["boxes"][2], torch.tensor([x1 * sx, y1 * sy + cy, x2 * sx, y2 * sy + cy]))


def test_probability_zero_changes_nothing():
    images, targets = _batch()
    out, same = mosaic(images, targets, torch.Generator().manual_seed(0), p=0.0)
    assert torch.equal(out, images) and same == targets


def test_file_batches_get_the_same_mosaic_as_the_op(tmp_path):
    """A COCO folder's train batches with data.mosaic=1 are the op applied to the plain batches with the batch's
    own generator; per-object values (iscrowd) follow their boxes."""
    import json

    import numpy as np
    from PIL import Image

    from zrenie.config import build_config
    from zrenie.data.catalog import open_splits
    from zrenie.data.loading import batch_generator, build_loader

    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(1, 9):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": 32, "height": 24})
        for j in range(i % 3 + 1):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1 + j % 2, "iscrowd": int(j == 2),
                         "bbox": [2.0 + 5 * j, 3.0, 10.0, 8.0 + j]})
    (tmp_path / "ann.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                   "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    keys = {"data.name": "coco", "data.root": str(tmp_path / "images"), "data.ann": str(tmp_path / "ann.json"),
            "data.size": 32, "data.augment": "none", "data.workers": 0, "data.batch_size": 4,
            "data.val_fraction": 0.125}
    batches = {}
    for p in (0.0, 1.0):
        cfg = build_config(task="detect", **keys, **{"data.mosaic": p})
        splits = open_splits(cfg.data, target="boxes")
        batches[p] = next(iter(build_loader(splits.train, splits, cfg, torch.device("cpu"), train=True,
                                            normalize=False)))
    expected_images, expected = mosaic(batches[0.0]["image"], batches[0.0]["target"],
                                       batch_generator(0, 0, 0, 0, torch.device("cpu")), 1.0)
    assert torch.equal(batches[1.0]["image"], expected_images)
    for got, want in zip(batches[1.0]["target"], expected):
        assert set(got) == {"boxes", "labels", "iscrowd"}
        for key in got:
            assert torch.equal(got[key].as_subclass(torch.Tensor), want[key].as_subclass(torch.Tensor))
            assert len(got[key]) == len(got["boxes"])


def test_mosaic_of_images_at_their_own_size_is_one_config_error(tmp_path):
    import pytest

    from zrenie.config import build_config
    from zrenie.data.base import DatasetSplits
    from zrenie.data.loading import build_loader
    from zrenie.errors import ConfigError

    class Files(torch.utils.data.Dataset):
        target_kind = "boxes"

        def __len__(self):
            return 4

    splits = DatasetSplits(train=Files(), val=Files(), test=Files(), classes=["a"], in_channels=3, image_size=None,
                           mean=(0.5,) * 3, std=(0.25,) * 3)
    cfg = build_config(task="detect", **{"data.mosaic": 0.5})
    with pytest.raises(ConfigError, match="set data.size"):
        build_loader(splits.train, splits, cfg, torch.device("cpu"), train=True)
