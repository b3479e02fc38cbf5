import pytest
import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

import zrenie
from zrenie.errors import ShapeError
from zrenie.nn.backbones.resnet import ResNet

from ._helpers import (assert_maps_equal, assert_same_logits, meta_twins, n_params, state_shapes,
                       torchvision_and_ours)

# torchvision's `meta["num_params"]` for its ImageNet weights of each model.
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_parameter_count_and_state_dict_equal_torchvision(name):
    ours, reference = meta_twins(name)  # on the meta device, so resnet152 is cheap too
    assert n_params(ours) == n_params(reference) == TORCHVISION_PARAMS[name]
    assert state_shapes(ours) == state_shapes(reference)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet101"])
def test_logits_equal_torchvision_with_its_weights(name):
    reference, ours = torchvision_and_ours(name)
    assert_same_logits(reference, ours, torch.randn(2, 3, 64, 64))


def test_stage_features_equal_torchvision_layer_outputs():
    reference, ours = torchvision_and_ours("resnet18")
    layers = ["layer1", "layer2", "layer3", "layer4"]
    extractor = create_feature_extractor(reference, return_nodes=layers)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = extractor(x)
        maps = ours.stage_features(x)
    assert len(maps) == 4
    assert_maps_equal(maps, expected, layers)


@pytest.mark.parametrize("name, expansion", [("resnet18", 1), ("resnet50", 4)])
def test_small_input_takes_32x32_and_keeps_layer1_at_full_resolution(name, expansion):
    model = zrenie.build_model(name, num_classes=10, small_input=True).eval()
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        shapes = [tuple(m.shape) for m in model.stage_features(x)]
    assert shapes == [(2, 64 * expansion, 32, 32), (2, 128 * expansion, 16, 16),
                      (2, 256 * expansion, 8, 8), (2, 512 * expansion, 4, 4)]


def test_default_stem_downsamples_4x_before_layer1_and_takes_other_channel_counts():
    model = zrenie.build_model("resnet18", num_classes=5, in_channels=1).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert model(x).shape == (2, 5)
        assert [m.shape[-1] for m in model.stage_features(x)] == [16, 8, 4, 2]


@pytest.mark.parametrize("small_input", [False, True])
def test_min_input_size_is_the_true_minimum(small_input):
    model = zrenie.build_model("resnet18", num_classes=3, small_input=small_input).eval()
    size = ResNet.min_input_size
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 3)
        assert model.stage_features(torch.randn(2, 3, size, size))[-1].shape[-2:] == (1, 1)
    with pytest.raises(ShapeError, match=f"resnet18: input {size - 1}x{size} .*minimum {size}x{size}"):
        model(torch.randn(2, 3, size - 1, size))
    with pytest.raises(ShapeError, match=r"expected images \(B, C, H, W\)"):
        model.stage_features(torch.randn(3, 32, 32))


def test_dropout_goes_before_fc_without_changing_keys():
    plain = zrenie.build_model("resnet18", num_classes=10).eval()
    with_dropout = zrenie.build_model("resnet18", num_classes=10, dropout=0.3)
    assert isinstance(with_dropout.dropout, nn.Dropout) and with_dropout.dropout.p == 0.3
    assert isinstance(with_dropout.fc, nn.Linear)
    with_dropout.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(with_dropout.eval()(x), plain(x))  # dropout is the identity in eval mode


def test_init_like_torchvision_and_zero_init_residual():
    torch.manual_seed(0)
    model = zrenie.build_model("resnet50")
    # Kaiming normal, fan_out: std = sqrt(2 / (out_channels * k * k)); conv1 has 64 * 7 * 7 fan_out.
    assert model.conv1.weight.std().item() == pytest.approx((2 / (64 * 49)) ** 0.5, rel=0.05)
    assert torch.all(model.layer1[0].bn3.weight == 1) and torch.all(model.layer1[0].bn3.bias == 0)
    zeroed = zrenie.build_model("resnet50", zero_init_residual=True)
    assert all(torch.all(b.bn3.weight == 0) for b in zeroed.modules() if hasattr(b, "bn3"))
    assert torch.all(zeroed.layer1[0].bn2.weight == 1)
    basic = zrenie.build_model("resnet18", zero_init_residual=True)
    assert all(torch.all(b.bn2.weight == 0) for b in basic.modules() if hasattr(b, "bn2"))


def test_registered_by_name():
    assert set(TORCHVISION_PARAMS) <= set(zrenie.list_models("resnet*"))


def test_dilated_stages_equal_torchvision():
    """DeepLab's output stride 8: layer3 and layer4 keep layer2's resolution with dilated 3x3 convolutions."""
    import torchvision

    from zrenie.nn.backbones.resnet import RESNET_VARIANTS

    reference = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True]).eval()
    ours = ResNet(*RESNET_VARIANTS["resnet50"], replace_stride_with_dilation=(False, True, True)).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, 48, 48)
    extractor = create_feature_extractor(reference, return_nodes=["layer1", "layer2", "layer3", "layer4"])
    with torch.no_grad():
        maps = ours.stage_features(x)
        assert_maps_equal(maps, extractor(x), ["layer1", "layer2", "layer3", "layer4"])
    assert [m.shape[-1] for m in maps] == [12, 6, 6, 6]
    small = ResNet(*RESNET_VARIANTS["resnet18"], replace_stride_with_dilation=(False, False, True))
    assert [m.shape[-1] for m in small.stage_features(x)] == [12, 6, 3, 3]  # beyond torchvision: dilated BasicBlocks
