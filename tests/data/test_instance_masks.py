"""Instance masks move with their image and boxes: the in-memory crop, flip and mosaic against per-mask
references (zero padding and slicing, `torch.flip`, nearest resizing), and the shapes scenes' masks against
torchvision's `masks_to_boxes`."""

import torch
import torch.nn.functional as F
from torchvision.ops import masks_to_boxes

from zrenie.config import DataConfig
from zrenie.data.batch_aug import BatchAugment, mosaic
from zrenie.data.builtin.shapes import shapes


def _scenes(n=6, size=32):
    splits = shapes(DataConfig(name="shapes", size=size, num_samples=n * 4, seed=3), target="instances")
    return splits.train.images[:n].float() / 255, splits.train.targets[:n]


def test_shapes_instances_carry_one_mask_per_box_equal_to_its_box():
    images, targets = _scenes()
    for t in targets:
        assert t["masks"].dtype == torch.bool and t["masks"].shape == (len(t["labels"]), *images.shape[-2:])
        edges = masks_to_boxes(t["masks"]) + torch.tensor([0, 0, 1, 1])  # last pixel index -> pixel edge
        assert torch.equal(edges, t["boxes"])


def _reference_crop(mask, padding, dx, dy):
    padded = F.pad(mask[None].float(), (padding,) * 4)[0]
    h, w = mask.shape
    return padded[dy:dy + h, dx:dx + w].bool()


def test_joint_crops_and_flips_each_instance_mask_with_its_sample():
    images, targets = _scenes()
    aug = BatchAugment("light", images.shape[-1], hflip=True)
    g = torch.Generator().manual_seed(0)
    out, masks, boxes = aug.joint(images, g, masks=[t["masks"] for t in targets],
                                  boxes=[t["boxes"] for t in targets])
    g = torch.Generator().manual_seed(0)  # the same draws, in the same order
    from zrenie.data.batch_aug import crop_offsets, flip_draws

    dx, dy = crop_offsets(len(images), aug.padding, g, images.device)
    flip = flip_draws(len(images), g, images.device)
    for i, t in enumerate(targets):
        for j, mask in enumerate(t["masks"]):
            expected = _reference_crop(mask, aug.padding, int(dx[i]), int(dy[i]))
            expected = expected.flip(-1) if flip[i] else expected
            assert torch.equal(masks[i][j], expected)
        kept_masks = masks[i][boxes[i][1]]
        kept_boxes = boxes[i][0]
        assert len(kept_masks) == len(kept_boxes)
        for mask, box in zip(kept_masks, kept_boxes):  # every pixel of the object lies inside its box
            ys, xs = mask.nonzero(as_tuple=True)
            if len(xs):
                assert xs.min() >= box[0] and xs.max() < box[2] and ys.min() >= box[1] and ys.max() < box[3]


def test_flip_keeps_masks_and_boxes_tight():
    images, targets = _scenes()
    aug = BatchAugment("light", images.shape[-1], hflip=True)
    aug.padding = 0  # crop_at with no padding is the identity: only the flip moves pixels
    _, masks, boxes = aug.joint(images, torch.Generator().manual_seed(1), masks=[t["masks"] for t in targets],
                                boxes=[t["boxes"] for t in targets])
    for m, (b, keep) in zip(masks, boxes):
        assert keep.all()
        assert torch.equal(masks_to_boxes(m) + torch.tensor([0, 0, 1, 1]), b)


def test_mosaic_resizes_masks_with_their_image():
    images, targets = _scenes(n=4)
    out, new = mosaic(images, targets, torch.Generator().manual_seed(0), p=1.0)
    for t in new:
        assert len(t["masks"]) == len(t["boxes"]) == len(t["labels"])
        assert t["masks"].shape[-2:] == images.shape[-2:]
        for mask, box in zip(t["masks"], t["boxes"]):
            ys, xs = mask.nonzero(as_tuple=True)
            if len(xs):  # nearest resizing may shave a pixel off a side, never add one outside
                assert xs.min() >= box[0] - 1 and xs.max() < box[2] + 1
                assert ys.min() >= box[1] - 1 and ys.max() < box[3] + 1


def test_empty_instance_sets_pass_through():
    images = torch.rand(2, 3, 16, 16)
    empty = [torch.zeros(0, 16, 16, dtype=torch.bool)] * 2
    aug = BatchAugment("light", 16, hflip=True)
    _, masks, boxes = aug.joint(images, torch.Generator().manual_seed(0), masks=empty,
                                boxes=[torch.zeros(0, 4)] * 2)
    assert [m.shape for m in masks] == [(0, 16, 16)] * 2 and [len(b) for b, _ in boxes] == [0, 0]
