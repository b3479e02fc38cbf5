import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

import zrenie
from zrenie.errors import ShapeError
from zrenie.nn.backbones.mobilenet import InvertedResidual, MobileNetV2, make_divisible

from ._helpers import (assert_maps_equal, assert_same_logits, meta_twins, n_params, state_shapes,
                       torchvision_and_ours)

# torchvision's `meta["num_params"]` for width 1.0; the other widths as torchvision builds them.
TORCHVISION_PARAMS = {1.0: 3_504_872, 0.5: 1_968_680, 1.4: 6_108_776}


@pytest.mark.parametrize("width_mult", list(TORCHVISION_PARAMS))
def test_parameter_count_and_state_dict_equal_torchvision(width_mult):
    ours, reference = meta_twins("mobilenet_v2", width_mult=width_mult)
    assert n_params(ours) == n_params(reference) == TORCHVISION_PARAMS[width_mult]
    assert state_shapes(ours) == state_shapes(reference)


@pytest.mark.parametrize("width_mult", list(TORCHVISION_PARAMS))
def test_logits_equal_torchvision_with_its_weights(width_mult):
    reference, ours = torchvision_and_ours("mobilenet_v2", width_mult=width_mult)
    assert_same_logits(reference, ours, torch.randn(2, 3, 64, 64))


def test_stage_features_equal_torchvision_outputs_before_each_downsampling():
    reference, ours = torchvision_and_ours("mobilenet_v2")
    # The last block at each resolution: torchvision's blocks with stride 2 are features 2, 4, 7 and 14.
    nodes = ["features.1", "features.3", "features.6", "features.13", "features.18"]
    extractor = create_feature_extractor(reference, return_nodes=nodes)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = extractor(x)
        maps = ours.stage_features(x)
    assert [m.shape[1] for m in maps] == [16, 24, 32, 96, 1280]
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 4, 2]
    assert_maps_equal(maps, expected, nodes)


def test_small_input_takes_32x32_and_downsamples_8x():
    model = zrenie.build_model("mobilenet_v2", num_classes=10, small_input=True).eval()
    assert model.features[0][0].stride == (1, 1) and model.features[2].stride == 1
    assert model.features[4].stride == 2
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        shapes = [tuple(m.shape) for m in model.stage_features(x)]
    assert shapes == [(2, 16, 32, 32), (2, 24, 32, 32), (2, 32, 16, 16), (2, 96, 8, 8), (2, 1280, 4, 4)]


def test_other_channel_counts_and_widths():
    model = zrenie.build_model("mobilenet_v2", num_classes=4, in_channels=1, width_mult=0.5).eval()
    with torch.no_grad():
        maps = model.stage_features(torch.randn(2, 1, 64, 64))
        assert model(torch.randn(2, 1, 64, 64)).shape == (2, 4)
    # Below width 1 the last conv keeps 1280 channels (Sandler et al. 2018, Sec. 6.1).
    assert [m.shape[1] for m in maps] == [8, 16, 16, 48, 1280]


@pytest.mark.parametrize("small_input", [False, True])
def test_min_input_size_is_the_true_minimum(small_input):
    model = zrenie.build_model("mobilenet_v2", num_classes=3, small_input=small_input).eval()
    size = MobileNetV2.min_input_size
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 3)
        assert model.stage_features(torch.randn(2, 3, size, size))[-1].shape[-2:] == (1, 1)
    with pytest.raises(ShapeError, match=f"mobilenet_v2: input {size}x{size - 1}.*minimum {size}x{size}"):
        model(torch.randn(2, 3, size, size - 1))
    with pytest.raises(ShapeError, match=r"expected images \(B, C, H, W\)"):
        model(torch.randn(3, 32, 32))


def test_dropout_sets_the_classifier_rate_without_changing_keys():
    default = zrenie.build_model("mobilenet_v2", num_classes=10)
    assert isinstance(default.classifier[0], nn.Dropout) and default.classifier[0].p == 0.2
    custom = zrenie.build_model("mobilenet_v2", num_classes=10, dropout=0.5)
    assert custom.classifier[0].p == 0.5
    assert list(custom.state_dict()) == list(default.state_dict())


def test_inverted_residual_uses_the_shortcut_only_where_shapes_match():
    model = zrenie.build_model("mobilenet_v2")
    blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17
    reference = torchvision.models.mobilenet_v2()
    assert [b.use_res_connect for b in blocks] == [b.use_res_connect for b in reference.features[1:18]]


def test_init_like_torchvision_and_zero_init_residual():
    torch.manual_seed(0)
    model = zrenie.build_model("mobilenet_v2")
    conv = model.features[18][0]  # 1x1, 320 -> 1280: fan_out = 1280
    assert conv.weight.std().item() == pytest.approx((2 / 1280) ** 0.5, rel=0.05)
    assert model.classifier[1].weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.all(model.classifier[1].bias == 0)
    zeroed = zrenie.build_model("mobilenet_v2", zero_init_residual=True)
    for block in zeroed.features[1:18]:
        assert torch.all(block.conv[-1].weight == 0) == block.use_res_connect


def test_make_divisible_matches_torchvision():
    from torchvision.models._utils import _make_divisible

    for value in [8 * 0.35, 16 * 0.5, 24 * 0.75, 32 * 1.4, 96 * 0.35, 160 * 1.3, 1280 * 1.4, 3.0, 100.0]:
        assert make_divisible(value, 8) == _make_divisible(value, 8)
