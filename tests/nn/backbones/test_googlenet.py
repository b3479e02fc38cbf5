from functools import partial

import pytest
import torch

import zrenie
from zrenie.errors import ConfigError
from zrenie.nn.backbones.googlenet import AUX_LOSS_WEIGHT, MIN_INPUT_SIZE, GoogLeNetOutputs, main_logits

from ._helpers import (assert_fields_equal, assert_maps_equal, assert_same_logits, assert_size_errors,
                       changed_shapes, n_params, outputs_of, state_shapes, torchvision_and_ours,
                       torchvision_with_aux, train_outputs, transform_input_on, unchecked)

# torchvision's GoogLeNet with both auxiliary heads and 1000 classes; its weights' meta["num_params"]
# (6,624,904) counts the model after the heads are removed.
TORCHVISION_PARAMS = 13_004_888
TORCHVISION_PARAMS_NO_AUX = 6_624_904


torchvision_googlenet = partial(torchvision_with_aux, "googlenet")


@pytest.fixture(scope="module")
def reference_and_ours():
    """torchvision's GoogLeNet with random weights, and ours loaded from its saved state_dict (strict)."""
    return torchvision_and_ours("googlenet", torchvision_googlenet, via_file=True, skip_init=True)


def test_parameter_count_and_state_dict_equal_torchvision():
    with torch.device("meta"):  # shapes without memory or init cost
        ours, reference = zrenie.build_model("googlenet"), torchvision_googlenet()
        no_aux = zrenie.build_model("googlenet", aux_logits=False)
    assert n_params(ours) == n_params(reference) == TORCHVISION_PARAMS
    assert n_params(no_aux) == TORCHVISION_PARAMS_NO_AUX
    assert list(state_shapes(ours).items()) == list(state_shapes(reference).items())


def test_eval_logits_equal_torchvision(reference_and_ours):
    reference, ours = reference_and_ours
    x = torch.randn(2, 3, 64, 64)
    assert_same_logits(reference, ours, x)
    with transform_input_on(reference, ours):
        assert_same_logits(reference, ours, x)


def test_train_outputs_with_aux_heads_equal_torchvision(reference_and_ours):
    reference, ours = reference_and_ours
    expected, got = train_outputs(reference, ours, torch.randn(2, 3, 64, 64))
    assert isinstance(got, GoogLeNetOutputs) and len(got) == 3
    assert_fields_equal(got, expected)
    assert main_logits(got) is got.logits and main_logits(got.logits) is got.logits
    assert AUX_LOSS_WEIGHT == 0.3


def test_stage_features_equal_torchvision_outputs_before_each_downsampling(reference_and_ours):
    reference, ours = reference_and_ours
    nodes = ["conv1", "conv3", "inception3b", "inception4e", "inception5b"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = outputs_of(reference, nodes, x)
        maps = ours.stage_features(x)
    assert [tuple(m.shape[1:]) for m in maps] == \
        [(64, 32, 32), (192, 16, 16), (480, 8, 8), (832, 4, 4), (1024, 2, 2)]
    assert_maps_equal(maps, expected, nodes)


def test_small_input_takes_32x32():
    torch.manual_seed(0)
    model = zrenie.build_model("googlenet", num_classes=10, small_input=True).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
        maps = model.stage_features(torch.rand(1, 3, 32, 32))
    assert [tuple(m.shape) for m in maps] == [(1, 480, 32, 32), (1, 832, 16, 16), (1, 1024, 8, 8)]
    with torch.device("meta"):
        default = zrenie.build_model("googlenet", num_classes=10)
        train_out = zrenie.build_model("googlenet", num_classes=10, small_input=True).train()(
            torch.zeros(2, 3, 32, 32))
    changed = changed_shapes(model, default)
    assert model.state_dict().keys() == default.state_dict().keys() and changed == {"conv1.conv.weight"}
    assert [tuple(t.shape) for t in train_out] == [(2, 10)] * 3


@pytest.mark.parametrize("small_input", [False, True])
def test_minimum_input_size_is_exact_and_smaller_inputs_raise_one_line(small_input):
    size = MIN_INPUT_SIZE[small_input]
    with torch.device("meta"):  # the size checks are shape computations: no data needed
        model = zrenie.build_model("googlenet", small_input=small_input)
        assert model.min_input_size == size
        for training in (False, True):  # the auxiliary heads pool adaptively: no larger minimum
            out = model.train(training)(torch.zeros(2, 3, size, size))
            assert main_logits(out).shape == (2, 1000)
        assert_size_errors(model, size, unchecked(model.eval()), too_small=(size - 1, size + 10),
                           match=f"minimum {size}x{size}", batch=2)


def test_builder_options():
    with torch.device("meta"):
        model = zrenie.build_model("googlenet", num_classes=7, in_channels=1, dropout=0.1, dropout_aux=0.5)
        plain = zrenie.build_model("googlenet", aux_logits=False).train()
        assert plain(torch.zeros(2, 3, 64, 64)).shape == (2, 1000)  # no tuple without aux heads
    assert model.conv1.conv.in_channels == 1 and model.fc.out_features == 7
    assert model.dropout.p == 0.1 and model.aux1.dropout.p == model.aux2.dropout.p == 0.5
    assert not hasattr(plain, "aux1") and not plain.transform_input
    with pytest.raises(ConfigError, match="does not take these options"):
        zrenie.build_model("googlenet", no_such_option=1)
    assert zrenie.list_models("googlenet") == ["googlenet"]
