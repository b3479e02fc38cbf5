import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

import zrenie
from zrenie.errors import ShapeError
from zrenie.nn.backbones.mobilenet_v3 import MobileNetV3
from zrenie.registry import MODELS

from ._helpers import (assert_maps_equal, assert_same_logits, meta_twins, n_params, state_shapes,
                       torchvision_and_ours, train_outputs)

# torchvision's `meta["num_params"]` of its ImageNet weights, and the numbers it documents.
TORCHVISION_PARAMS = {
    "mobilenet_v3_large": (torchvision.models.MobileNet_V3_Large_Weights.IMAGENET1K_V1, 5_483_032),
    "mobilenet_v3_small": (torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1, 2_542_856),
}
# The last block at each resolution: the blocks with stride 2 are features 2, 4, 7, 13 (Large), 1, 2, 4, 9 (Small).
STAGE_NODES = {
    "mobilenet_v3_large": ["features.1", "features.3", "features.6", "features.12", "features.16"],
    "mobilenet_v3_small": ["features.0", "features.1", "features.3", "features.8", "features.12"],
}
STAGE_CHANNELS = {"mobilenet_v3_large": [16, 24, 40, 112, 960], "mobilenet_v3_small": [16, 16, 24, 48, 576]}


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_parameter_count_and_state_dict_equal_torchvision(name):
    weights, documented = TORCHVISION_PARAMS[name]
    ours, reference = meta_twins(name)
    assert n_params(ours) == n_params(reference) == weights.meta["num_params"] == documented
    assert state_shapes(ours) == state_shapes(reference)
    for options in ({"width_mult": 0.75, "reduced_tail": True}, {"dilated": True, "num_classes": 10}):
        ours, reference = meta_twins(name, **options)
        assert state_shapes(ours) == state_shapes(reference), options


@pytest.mark.parametrize("name, options", [("mobilenet_v3_large", {}),
                                           ("mobilenet_v3_small", {"width_mult": 0.75, "reduced_tail": True}),
                                           ("mobilenet_v3_large", {"dilated": True})])
def test_logits_equal_torchvision_with_its_weights(name, options):
    reference, ours = torchvision_and_ours(name, via_file=True, **options)
    assert_same_logits(reference, ours, torch.randn(2, 3, 64, 64))


@pytest.mark.parametrize("name", list(STAGE_NODES))
def test_stage_features_equal_torchvision_outputs_before_each_downsampling(name):
    reference, ours = torchvision_and_ours(name)
    extractor = create_feature_extractor(reference, return_nodes=STAGE_NODES[name])
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = extractor(x)
        maps = ours.stage_features(x)
    assert [m.shape[1] for m in maps] == STAGE_CHANNELS[name]
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 4, 2]
    assert_maps_equal(maps, expected, STAGE_NODES[name])


def test_dilated_trades_the_last_stride_for_dilation():
    model = zrenie.build_model("mobilenet_v3_large", dilated=True).eval()
    depthwise = model.features[13].block[1][0]  # the last stage's first block: stride 2 without dilation
    assert depthwise.stride == (1, 1) and depthwise.dilation == (2, 2) and depthwise.padding == (4, 4)
    with torch.no_grad():
        maps = model.stage_features(torch.randn(1, 3, 64, 64))
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 4, 4]  # output stride 16


def test_training_mode_equals_torchvision_and_updates_batchnorm_alike():
    """Dropout draws and batch statistics as torchvision's, and its BN momentum (0.01), which eval-mode
    logits cannot show."""
    reference, ours = torchvision_and_ours("mobilenet_v3_small")
    expected, got = train_outputs(reference, ours, torch.randn(4, 3, 64, 64))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    reference_state = reference.state_dict()
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(value, reference_state[key], rtol=1e-5, atol=1e-6, msg=key)


def test_init_and_batchnorm_settings_like_torchvision():
    torch.manual_seed(0)
    model = zrenie.build_model("mobilenet_v3_large")
    conv = model.features[16][0]  # 1x1, 160 -> 960: fan_out = 960
    assert conv.weight.std().item() == pytest.approx((2 / 960) ** 0.5, rel=0.05)
    assert model.classifier[3].weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.all(model.classifier[3].bias == 0)

    def settings(net):
        return [(m.eps, m.momentum) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]

    with torch.device("meta"):
        reference = torchvision.models.mobilenet_v3_large()
    assert settings(model) == settings(reference)


def test_small_input_takes_32x32_and_downsamples_8x():
    for name in STAGE_NODES:
        model = zrenie.build_model(name, num_classes=10, small_input=True).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
            maps = model.stage_features(torch.randn(2, 3, 32, 32))
        assert [m.shape[-1] for m in maps] == [32, 32, 16, 8, 4]


def test_other_channels_classes_dropout_and_the_minimum_size():
    model = zrenie.build_model("mobilenet_v3_small", num_classes=4, in_channels=1, dropout=0.5).eval()
    assert model.classifier[2].p == 0.5
    assert list(model.state_dict())[-4:] == ["classifier.0.weight", "classifier.0.bias",
                                            "classifier.3.weight", "classifier.3.bias"]
    size = MobileNetV3.min_input_size
    with torch.no_grad():
        assert model(torch.randn(2, 1, 17, 23)).shape == (2, 4)
        assert model(torch.randn(2, 1, size, size)).shape == (2, 4)
    with pytest.raises(ShapeError, match=r"mobilenet_v3_small: expected images \(B, C, H, W\)"):
        model(torch.randn(1, 32, 32))
    assert "classify" in MODELS.tags("mobilenet_v3_large") and "classify" in MODELS.tags("mobilenet_v3_small")
