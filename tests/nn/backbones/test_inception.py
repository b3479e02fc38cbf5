from functools import partial

import pytest
import torch

import zrenie
from zrenie.errors import ConfigError, ShapeError
from zrenie.nn.backbones.googlenet import main_logits
from zrenie.nn.backbones.inception import (AUX_LOSS_WEIGHT, MIN_AUX_INPUT_SIZE, MIN_INPUT_SIZE,
                                           InceptionOutputs)

from ._helpers import (assert_fields_equal, assert_maps_equal, assert_same_logits, n_params, outputs_of,
                       state_shapes, torchvision_and_ours, torchvision_with_aux, train_outputs,
                       transform_input_on)

# torchvision's `Inception_V3_Weights.IMAGENET1K_V1.meta["num_params"]` (with the auxiliary head).
TORCHVISION_PARAMS = 27_161_264


torchvision_inception_v3 = partial(torchvision_with_aux, "inception_v3")


@pytest.fixture(scope="module")
def reference_and_ours():
    """torchvision's Inception-v3 with random weights, and ours loaded from its saved state_dict (strict)."""
    return torchvision_and_ours("inception_v3", torchvision_inception_v3, via_file=True, skip_init=True)


def test_parameter_count_and_state_dict_equal_torchvision():
    with torch.device("meta"):  # shapes without memory or init cost
        ours, reference = zrenie.build_model("inception_v3"), torchvision_inception_v3()
        small = zrenie.build_model("inception_v3", small_input=True)
    assert n_params(ours) == n_params(reference) == TORCHVISION_PARAMS
    expected = list(state_shapes(reference).items())
    assert list(state_shapes(ours).items()) == expected
    # The small stem changes strides and paddings only, so ImageNet weights still load into it.
    assert list(state_shapes(small).items()) == expected


def test_eval_logits_equal_torchvision_at_the_minimum_size(reference_and_ours):
    reference, ours = reference_and_ours
    x = torch.randn(2, 3, 75, 75)  # torchvision's min_size, the cheapest input it takes
    assert_same_logits(reference, ours, x)
    with transform_input_on(reference, ours):
        assert_same_logits(reference, ours, x)


def test_train_outputs_with_aux_head_equal_torchvision(reference_and_ours):
    reference, ours = reference_and_ours
    x = torch.randn(2, 3, 299, 299)  # the auxiliary head's fixed pooling needs the full size
    expected, got = train_outputs(reference, ours, x)
    assert isinstance(got, InceptionOutputs) and len(got) == 2
    assert_fields_equal(got, expected)
    assert main_logits(got) is got.logits
    assert AUX_LOSS_WEIGHT == 0.4


def test_stage_features_equal_torchvision_outputs_before_each_downsampling(reference_and_ours):
    reference, ours = reference_and_ours
    nodes = ["Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e", "Mixed_7c"]
    x = torch.randn(1, 3, 75, 75)
    with torch.no_grad():
        expected = outputs_of(reference, nodes, x)
        maps = ours.stage_features(x)
    assert [tuple(m.shape[1:]) for m in maps] == \
        [(64, 35, 35), (192, 15, 15), (288, 7, 7), (768, 3, 3), (2048, 1, 1)]
    assert_maps_equal(maps, expected, nodes)
    with torch.device("meta"):
        maps = zrenie.build_model("inception_v3").stage_features(torch.zeros(1, 3, 299, 299))
    assert [tuple(m.shape[1:]) for m in maps] == \
        [(64, 147, 147), (192, 71, 71), (288, 35, 35), (768, 17, 17), (2048, 8, 8)]


def test_small_input_takes_32x32_with_the_imagenet_layout_weights(reference_and_ours):
    with torch.device("meta"):
        model = zrenie.build_model("inception_v3", small_input=True)
    model.load_state_dict(reference_and_ours[1].state_dict(), strict=True, assign=True)
    with torch.no_grad():  # one image: the 32x32 grid makes this network cost ~7 GFLOP per image
        logits = model.eval()(torch.rand(1, 3, 32, 32))
    assert logits.shape == (1, 1000) and logits.isfinite().all()
    with torch.device("meta"):
        model = zrenie.build_model("inception_v3", num_classes=10, small_input=True)
        maps = model.eval().stage_features(torch.zeros(1, 3, 32, 32))
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
        out = model.train()(torch.zeros(2, 3, 32, 32))  # the adaptive auxiliary head takes 15x15
    assert [tuple(m.shape) for m in maps] == [(1, 288, 32, 32), (1, 768, 15, 15), (1, 2048, 7, 7)]
    assert isinstance(out, InceptionOutputs) and [tuple(t.shape) for t in out] == [(2, 10)] * 2


@pytest.mark.parametrize("small_input", [False, True])
def test_minimum_input_size_is_exact_and_smaller_inputs_raise_one_line(small_input):
    size, aux_size = MIN_INPUT_SIZE[small_input], MIN_AUX_INPUT_SIZE[small_input]
    with torch.device("meta"):  # the size checks are shape computations: no data needed
        model = zrenie.build_model("inception_v3", small_input=small_input)
        assert (model.min_input_size, model.min_aux_input_size) == (size, aux_size)
        assert model.eval()(torch.zeros(2, 3, size, size)).shape == (2, 1000)
        assert main_logits(model.train()(torch.zeros(2, 3, aux_size, aux_size))).shape == (2, 1000)
        model.min_input_size = model.min_aux_input_size = 1
        with pytest.raises(RuntimeError):  # one pixel less really breaks the network
            model.eval()(torch.zeros(2, 3, size - 1, size - 1))
        with pytest.raises(RuntimeError):  # and the auxiliary head in training
            model.train()(torch.zeros(2, 3, aux_size - 1, aux_size - 1))
        model.min_input_size, model.min_aux_input_size = size, aux_size
        with pytest.raises(ShapeError, match=f"minimum {size}x{size}") as err:
            model.eval()(torch.zeros(1, 3, size - 1, size + 10))
        assert "\n" not in str(err.value)
        if aux_size > size:
            with pytest.raises(ShapeError, match=f"aux_logits.*minimum {aux_size}x{aux_size}"):
                model.train()(torch.zeros(2, 3, aux_size - 1, aux_size))
            assert main_logits(model.eval()(torch.zeros(2, 3, aux_size - 1, aux_size))).shape == (2, 1000)


def test_builder_options():
    with torch.device("meta"):
        model = zrenie.build_model("inception_v3", num_classes=7, in_channels=1, dropout=0.1)
        plain = zrenie.build_model("inception_v3", aux_logits=False).train()
        assert plain(torch.zeros(2, 3, 75, 75)).shape == (2, 1000)  # no tuple, no 299 minimum
    assert model.Conv2d_1a_3x3.conv.in_channels == 1 and model.fc.out_features == 7
    assert model.dropout.p == 0.1 and model.AuxLogits.fc.out_features == 7
    assert not hasattr(plain, "AuxLogits") and not plain.transform_input
    with pytest.raises(ConfigError, match="does not take these options"):
        zrenie.build_model("inception_v3", no_such_option=1)
    assert zrenie.list_models("inception_v3") == ["inception_v3"]
