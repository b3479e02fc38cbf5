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
