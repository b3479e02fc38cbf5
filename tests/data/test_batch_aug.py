"""Batch augmentation against a per-image loop written the obvious way."""

import torch
import torch.nn.functional as F

from zrenie.data.batch_aug import BatchAugment, cutout, random_crop, random_hflip


def test_random_crop_equals_per_image_pad_and_slice():
    x = torch.rand(6, 3, 10, 12)
    g = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, g)
    g = torch.Generator().manual_seed(0)
    dx = torch.randint(0, 5, (6,), generator=g)
    dy = torch.randint(0, 5, (6,), generator=g)
    for i in range(6):
        padded = F.pad(x[i:i + 1], (2, 2, 2, 2), mode="reflect")[0]
        assert torch.equal(out[i], padded[:, dy[i]:dy[i] + 10, dx[i]:dx[i] + 12])


def test_cutout_zeroes_one_clipped_square_per_image():
    x = torch.ones(5, 2, 9, 9)
    g = torch.Generator().manual_seed(3)
    out = cutout(x, 4, g)
    g = torch.Generator().manual_seed(3)
    cy, cx = torch.randint(0, 9, (5,), generator=g), torch.randint(0, 9, (5,), generator=g)
    for i in range(5):
        expected = torch.ones(9, 9)
        y0, x0 = int(cy[i]) - 2, int(cx[i]) - 2
        expected[max(0, y0):max(0, y0 + 4), max(0, x0):max(0, x0 + 4)] = 0
        assert torch.equal(out[i, 0], expected) and torch.equal(out[i, 1], expected)


def test_hflip_flips_about_half_and_exactly():
    x = torch.rand(400, 1, 4, 4)
    out = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, x)]
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(f or s for f, s in zip(flipped, same))
    assert 150 < sum(flipped) < 250


def test_presets_depend_only_on_the_generator_seed():
    x = torch.rand(8, 3, 32, 32)
    aug = BatchAugment("standard", 32, hflip=True)
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert torch.equal(BatchAugment("none", 32, True)(x, torch.Generator()), x)
