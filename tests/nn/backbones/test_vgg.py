import pytest
import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

import zrenie
from zrenie.nn.backbones.vgg import MIN_INPUT_SIZE, VARIANTS

from ._helpers import (assert_maps_equal, assert_minimum_input_size, meta_twins, n_params, state_shapes,
                       torchvision_and_ours)

# torchvision's `meta["num_params"]` for its ImageNet weights of each model.
TORCHVISION_PARAMS = {
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
}


def test_variant_table_holds_torchvision_counts():
    assert {name: count for name, (_, _, count) in VARIANTS.items()} == TORCHVISION_PARAMS


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_parameter_count_and_state_dict_equal_torchvision(name):
    ours, reference = meta_twins(name)  # on the meta device, so all eight variants are cheap
    assert n_params(ours) == n_params(reference) == TORCHVISION_PARAMS[name]
    assert state_shapes(ours) == state_shapes(reference)


@pytest.mark.parametrize("name", ["vgg11", "vgg16_bn"])
def test_logits_and_stage_features_equal_torchvision_with_its_weights(name):
    reference, ours = torchvision_and_ours(name)
    pools = [i for i, m in enumerate(reference.features) if isinstance(m, nn.MaxPool2d)]
    nodes = [f"features.{i - 1}" for i in pools]  # the ReLU before each pool
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = reference(x)
        assert logits.std() > 1e-2  # large enough next to the 1e-5 tolerance
        torch.testing.assert_close(ours(x), logits, rtol=1e-5, atol=1e-5)
        expected = create_feature_extractor(reference, return_nodes=nodes)(x)
        maps = ours.stage_features(x)
    assert len(maps) == 5
    assert_maps_equal(maps, expected, nodes)


def test_stage_shapes_at_224():
    with torch.device("meta"):
        maps = zrenie.build_model("vgg16").stage_features(torch.zeros(2, 3, 224, 224))
    assert [tuple(m.shape) for m in maps] == [(2, 64, 224, 224), (2, 128, 112, 112), (2, 256, 56, 56),
                                             (2, 512, 28, 28), (2, 512, 14, 14)]


def test_small_input_takes_32x32_and_keeps_every_key():
    torch.manual_seed(0)
    model = zrenie.build_model("vgg11_bn", num_classes=10, small_input=True).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        maps = model.stage_features(x)
    assert [tuple(m.shape) for m in maps] == [(2, 64, 32, 32), (2, 128, 32, 32), (2, 256, 16, 16),
                                             (2, 512, 8, 8), (2, 512, 4, 4)]
    with torch.device("meta"):
        default = zrenie.build_model("vgg11_bn", num_classes=10)
    assert state_shapes(model) == state_shapes(default)


@pytest.mark.parametrize("small_input", [False, True])
def test_minimum_input_size_is_exact_and_smaller_inputs_raise_one_line(small_input):
    size = MIN_INPUT_SIZE[small_input]
    with torch.device("meta"):  # the size checks are shape computations: no data needed
        model = zrenie.build_model("vgg13", small_input=small_input)
        assert_minimum_input_size(model, size, model.features, too_small=(size - 1, size),
                                  match=f"vgg13: .*minimum {size}x{size}")


def test_builder_options():
    with torch.device("meta"):
        model = zrenie.build_model("vgg19_bn", num_classes=7, in_channels=1, dropout=0.3)
    assert model.features[0].in_channels == 1 and model.classifier[-1].out_features == 7
    assert [m.p for m in model.classifier if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    assert zrenie.list_models("vgg*") == sorted(TORCHVISION_PARAMS)
