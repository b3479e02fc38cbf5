"""Default boxes and grid anchors against torchvision's DefaultBoxGenerator and AnchorGenerator."""

import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from zrenie.errors import ConfigError
from zrenie.ops.anchors import (
    anchor_shapes, default_boxes, grid_anchors, num_anchors_per_location, num_default_boxes, ssd_scales,
)


def _torchvision_boxes(generator, image_hw, feature_hws):
    images = ImageList(torch.zeros(1, 3, *image_hw), [tuple(image_hw)])
    maps = [torch.zeros(1, 1, h, w) for h, w in feature_hws]
    return generator(images, maps)[0]


@pytest.mark.parametrize("image_hw, feature_hws, ratios, steps, clip", [
    ((128, 128), [(16, 16), (8, 8), (4, 4)], [[2], [2, 3], [2]], None, True),
    ((96, 160), [(12, 20), (6, 10), (3, 5), (1, 1)], [[2], [2, 3], [3], []], [8, 16, 32, 96], False),
])
def test_default_boxes_equal_torchvision(image_hw, feature_hws, ratios, steps, clip):
    ref = _torchvision_boxes(DefaultBoxGenerator(ratios, 0.2, 0.95, steps=steps, clip=clip), image_hw, feature_hws)
    ours = default_boxes(feature_hws, image_hw, aspect_ratios=ratios, min_scale=0.2, max_scale=0.95,
                         steps=steps, clip=clip)
    assert ours.shape == ref.shape
    assert sum(h * w * n for (h, w), n in zip(feature_hws, num_default_boxes(ratios))) == len(ours)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-6)  # torchvision computes in float32


def test_default_boxes_given_scales_and_normalised_form():
    scales = [0.1, 0.3, 0.6]
    ref = _torchvision_boxes(DefaultBoxGenerator([[2], [3]], scales=scales), (64, 64), [(8, 8), (4, 4)])
    ours = default_boxes([8, 4], 64, scales=scales, aspect_ratios=[[2], [3]])
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-6)  # torchvision computes in float32
    norm = default_boxes([8, 4], 64, scales=scales, aspect_ratios=[[2], [3]], normalized=True)
    # hand-worked: the first box is the (0, 0) cell's s_1 square, the second the sqrt(s_1 s_2) one
    torch.testing.assert_close(norm[0], torch.tensor([1 / 16, 1 / 16, 0.1, 0.1]))
    torch.testing.assert_close(norm[1], torch.tensor([1 / 16, 1 / 16, math.sqrt(0.03), math.sqrt(0.03)]))
    torch.testing.assert_close(norm[2], torch.tensor([1 / 16, 1 / 16, 0.1 * math.sqrt(2), 0.1 / math.sqrt(2)]))


def test_ssd_scales_are_the_papers():
    # Liu et al. 2016: s_k = s_min + (s_max - s_min)(k - 1)/(m - 1), m = 6, s_min 0.2, s_max 0.9
    assert ssd_scales(6) == pytest.approx([0.2, 0.34, 0.48, 0.62, 0.76, 0.9, 1.0])


def test_grid_anchors_equal_torchvision_at_offset_zero():
    # sizes and ratios whose half-sizes are whole pixels, so torchvision's rounding changes nothing
    sizes, ratios = ((16, 32), (64,)), (0.25, 1.0, 4.0)
    ref = _torchvision_boxes(AnchorGenerator(sizes, (ratios, ratios)), (64, 96), [(8, 12), (4, 6)])
    ours = grid_anchors([(8, 12), (4, 6)], [8, 16], sizes, ratios, offset=0.0)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-6)  # torchvision computes in float32
    assert num_anchors_per_location(sizes, ratios) == [6, 3]


def test_grid_anchors_wh_pairs_centred_in_cells():
    anchors = grid_anchors([(2, 3)], [16], [[(10, 20), (30, 6)]])
    assert anchors.shape == (2 * 3 * 2, 4)
    # location (row 1, column 2): centre (2.5 * 16, 1.5 * 16) = (40, 24); order row, column, anchor
    torch.testing.assert_close(anchors[-2], torch.tensor([35.0, 14.0, 45.0, 34.0]))
    torch.testing.assert_close(anchors[-1], torch.tensor([25.0, 21.0, 55.0, 27.0]))
    torch.testing.assert_close(anchor_shapes([8], [4.0]), torch.tensor([[4.0, 16.0]], dtype=torch.float64))


@pytest.mark.parametrize("call", [
    lambda: default_boxes([8, 4], 64, scales=[0.1, 0.2]),
    lambda: default_boxes([8, 4], 64, aspect_ratios=[[2]]),
    lambda: grid_anchors([8], [8, 16], [[16]]),
    lambda: grid_anchors([8], [8], [[16, (4, 4)]]),
    lambda: grid_anchors([0], [8], [[16]]),
])
def test_bad_parameters_are_config_errors(call):
    with pytest.raises(ConfigError):
        call()
