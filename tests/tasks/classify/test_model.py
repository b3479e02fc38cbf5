import pytest
import torch

import zrenie


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth, paper_millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7)])
def test_resnet_cifar_parameter_counts_match_the_paper(depth, paper_millions):
    """He et al. 2016, Table 6 (CIFAR-10, option A shortcuts), counts rounded as the paper prints them."""
    count = n_params(zrenie.build_model("resnet_cifar", depth=depth, num_classes=10))
    digits = 1 if depth == 110 else 2
    assert round(count / 1e6, digits) == paper_millions


def test_simple_cnn_parameter_count_by_hand():
    # conv weights (no bias, BN follows) + BN (2 per channel) per layer, then the linear layer.
    w, c_in, k = 32, 3, 10
    convs = [(c_in, w), (w, w), (w, 2 * w), (2 * w, 2 * w), (2 * w, 4 * w), (4 * w, 4 * w)]
    expected = sum(9 * a * b + 2 * b for a, b in convs) + 4 * w * k + k
    assert n_params(zrenie.build_model("simple_cnn", num_classes=k, in_channels=c_in)) == expected


@pytest.mark.parametrize("name", ["simple_cnn", "resnet_cifar"])
@pytest.mark.parametrize("size", [8, 32])
def test_models_take_small_and_cifar_inputs_and_expose_stage_features(name, size):
    model = zrenie.build_model(name, num_classes=7, in_channels=1).eval()
    x = torch.randn(2, 1, size, size)
    assert model(x).shape == (2, 7)
    maps = model.stage_features(x)
    assert len(maps) == 3 and [m.shape[-1] for m in maps] == [size, size // 2, size // 4]


def test_registry_lists_and_rejects_unknown():
    assert "resnet_cifar" in zrenie.list_models("resnet*") and "simple_cnn" not in zrenie.list_models("resnet*")
    with pytest.raises(zrenie.ZrenieError, match="unknown model 'nope'"):
        zrenie.build_model("nope")


def test_simple_cnn_without_batchnorm_has_conv_biases_instead():
    with_bn = zrenie.build_model("simple_cnn", num_classes=10)
    without = zrenie.build_model("simple_cnn", num_classes=10, batchnorm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in without.modules())
    convs = [m for m in without.modules() if isinstance(m, torch.nn.Conv2d)]
    # each conv trades its batchnorm's 2 * C parameters for C biases
    assert n_params(with_bn) - n_params(without) == sum(c.out_channels for c in convs)
