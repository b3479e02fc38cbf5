import pytest
import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

import zrenie
from zrenie.nn.backbones.alexnet import MIN_INPUT_SIZE

from ._helpers import (assert_maps_equal, assert_minimum_input_size, assert_same_logits, changed_shapes,
                       meta_twins, n_params, state_shapes, torchvision_and_ours)

# torchvision's `AlexNet_Weights.IMAGENET1K_V1.meta["num_params"]`.
TORCHVISION_PARAMS = 61_100_840


@pytest.fixture(scope="module")
def reference_and_ours():
    """torchvision's AlexNet with random weights, and ours loaded from its saved state_dict (strict)."""
    return torchvision_and_ours("alexnet", via_file=True)


def test_parameter_count_and_state_dict_equal_torchvision():
    ours, reference = meta_twins("alexnet")
    assert n_params(ours) == n_params(reference) == TORCHVISION_PARAMS
    assert state_shapes(ours) == state_shapes(reference)


def test_logits_equal_torchvision_with_its_weights_at_the_minimum_size(reference_and_ours):
    reference, ours = reference_and_ours
    x = torch.randn(2, 3, 63, 63)  # torchvision's min_size, the cheapest input it takes
    assert_same_logits(reference, ours, x)


def test_stage_features_equal_torchvision_outputs_before_each_pool(reference_and_ours):
    reference, ours = reference_and_ours
    nodes = ["features.1", "features.4", "features.11"]  # the ReLUs that feed the three max pools
    x = torch.randn(1, 3, 127, 127)
    with torch.no_grad():
        expected = create_feature_extractor(reference, return_nodes=nodes)(x)
        maps = ours.stage_features(x)
    assert [m.shape[1] for m in maps] == [64, 192, 256]
    assert_maps_equal(maps, expected, nodes)


def test_stage_shapes_at_224():
    with torch.device("meta"):
        maps = zrenie.build_model("alexnet").stage_features(torch.zeros(2, 3, 224, 224))
    assert [tuple(m.shape) for m in maps] == [(2, 64, 55, 55), (2, 192, 27, 27), (2, 256, 13, 13)]


def test_small_input_takes_32x32_and_changes_only_the_first_conv():
    torch.manual_seed(0)
    model = zrenie.build_model("alexnet", num_classes=10, small_input=True).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        maps = model.stage_features(x)
    assert [tuple(m.shape) for m in maps] == [(2, 64, 32, 32), (2, 192, 15, 15), (2, 256, 7, 7)]
    with torch.device("meta"):
        default = zrenie.build_model("alexnet", num_classes=10)
    changed = changed_shapes(model, default)
    assert model.state_dict().keys() == default.state_dict().keys() and changed == {"features.0.weight"}


@pytest.mark.parametrize("small_input", [False, True])
def test_minimum_input_size_is_exact_and_smaller_inputs_raise_one_line(small_input):
    size = MIN_INPUT_SIZE[small_input]
    with torch.device("meta"):  # the size checks are shape computations: no data needed
        model = zrenie.build_model("alexnet", small_input=small_input)
        assert_minimum_input_size(model, size, lambda x: model.avgpool(model.features(x)),
                                  too_small=(size - 1, size + 10), match=f"minimum {size}x{size}")


def test_builder_options():
    with torch.device("meta"):
        model = zrenie.build_model("alexnet", num_classes=7, in_channels=1, dropout=0.1)
    assert model.features[0].in_channels == 1 and model.classifier[-1].out_features == 7
    assert [m.p for m in model.classifier if isinstance(m, nn.Dropout)] == [0.1, 0.1]
    assert zrenie.list_models("alexnet") == ["alexnet"]
