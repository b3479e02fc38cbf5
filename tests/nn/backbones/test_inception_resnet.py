import pytest
import torch
from torch import nn

import zrenie
from zrenie.errors import ConfigError
from zrenie.nn.backbones.inception_resnet import BLOCK_C, MIN_INPUT_SIZE, InceptionResidual

from ._helpers import assert_minimum_input_size, n_params, state_shapes, unchecked

# timm's `inception_resnet_v2` with 1000 classes (its docs list 55.84M).
TIMM_PARAMS = 55_843_464
# Keras' `InceptionResNetV2().summary()`: total 55,873,736 (trainable 55,813,192, non-trainable
# 60,544). Its BatchNorms have no scale but count their moving mean and variance.
KERAS_TOTAL_PARAMS = 55_873_736
KERAS_NON_TRAINABLE = 60_544
# timm's state_dict: its entries, and some keys with their shapes.
TIMM_STATE_DICT_LEN = 1306
TIMM_KEYS = {
    "conv2d_1a.conv.weight": (32, 3, 3, 3),
    "mixed_5b.branch3.1.conv.weight": (64, 192, 1, 1),
    "repeat.0.branch1.1.bn.weight": (32,),
    "mixed_6a.branch1.2.conv.weight": (384, 256, 3, 3),
    "repeat_1.19.branch1.2.conv.weight": (192, 160, 7, 1),
    "mixed_7a.branch2.2.conv.weight": (320, 288, 3, 3),
    "repeat_2.8.conv2d.bias": (2080,),
    "block8.conv2d.weight": (2080, 448, 1, 1),
    "conv2d_7b.bn.num_batches_tracked": (),
    "classif.weight": (1000, 1536),
}


def test_parameter_count_equals_timm_and_keras():
    with torch.device("meta"):  # shapes without memory or init cost
        model = zrenie.build_model("inception_resnet_v2")
    assert n_params(model) == TIMM_PARAMS
    bn_channels = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert 2 * bn_channels == KERAS_NON_TRAINABLE
    # Keras: 3 values per BN channel (shift, mean, variance) where we count 2 (scale, shift).
    assert n_params(model) + bn_channels == KERAS_TOTAL_PARAMS


def test_state_dict_has_timm_keys_and_the_released_block_counts():
    with torch.device("meta"):
        model = zrenie.build_model("inception_resnet_v2")
        small = zrenie.build_model("inception_resnet_v2", small_input=True)
    state = model.state_dict()
    assert len(state) == TIMM_STATE_DICT_LEN
    assert {k: tuple(state[k].shape) for k in TIMM_KEYS} == TIMM_KEYS
    assert [len(model.repeat), len(model.repeat_1), len(model.repeat_2) + 1] == [10, 20, 10]
    assert {b.scale for b in model.repeat} == {0.17} and {b.scale for b in model.repeat_1} == {0.10}
    assert {b.scale for b in model.repeat_2} == {0.20} and model.block8.scale == 1.0
    assert state_shapes(small) == state_shapes(model)


def test_residual_block_adds_the_scaled_branch_output_to_its_input():
    torch.manual_seed(0)
    x = torch.randn(2, 2080, 3, 3)
    block = InceptionResidual(2080, BLOCK_C, scale=0.2).eval()
    last = InceptionResidual(2080, BLOCK_C, scale=1.0, relu=False).eval()
    with torch.no_grad():
        branches = torch.cat([block.branch0(x), block.branch1(x)], 1)  # (2, 192 + 256, 3, 3)
        projected = nn.functional.conv2d(branches, block.conv2d.weight, block.conv2d.bias)
        expected = torch.relu(x + 0.2 * projected)
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
        for tensor in (last.conv2d.weight, last.conv2d.bias):
            tensor.zero_()
        torch.testing.assert_close(last(x), x)  # the final block is linear: negatives pass through


def test_small_input_takes_32x32_and_stage_shapes():
    torch.manual_seed(0)
    model = zrenie.build_model("inception_resnet_v2", num_classes=10, small_input=True).eval()
    with torch.no_grad():  # one image: the 32x32 grid makes this network cost ~19 GFLOP per image
        assert model(torch.rand(1, 3, 32, 32)).isfinite().all()
    with torch.device("meta"):  # shape computations only
        small = zrenie.build_model("inception_resnet_v2", num_classes=10, small_input=True).eval()
        assert small(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
        maps = small.stage_features(torch.zeros(1, 3, 32, 32))
        default = zrenie.build_model("inception_resnet_v2").stage_features(torch.zeros(1, 3, 299, 299))
    assert [tuple(m.shape) for m in maps] == [(1, 320, 32, 32), (1, 1088, 15, 15), (1, 1536, 7, 7)]
    assert [tuple(m.shape) for m in default] == \
        [(1, 64, 147, 147), (1, 192, 71, 71), (1, 320, 35, 35), (1, 1088, 17, 17), (1, 1536, 8, 8)]


@pytest.mark.parametrize("small_input", [False, True])
def test_minimum_input_size_is_exact_and_smaller_inputs_raise_one_line(small_input):
    size = MIN_INPUT_SIZE[small_input]
    with torch.device("meta"):  # the size checks are shape computations: no data needed
        model = zrenie.build_model("inception_resnet_v2", small_input=small_input)
        assert_minimum_input_size(model, size, unchecked(model), too_small=(size - 1, size + 10),
                                  match=f"minimum {size}x{size}", batch=2)


def test_builder_options():
    with torch.device("meta"):
        model = zrenie.build_model("inception_resnet_v2", num_classes=7, in_channels=1, dropout=0.1)
        default = zrenie.build_model("inception_resnet_v2")
    assert model.conv2d_1a.conv.in_channels == 1 and model.classif.out_features == 7
    assert model.head_drop.p == 0.1 and default.head_drop.p == 0.2
    with pytest.raises(ConfigError, match="does not take these options"):
        zrenie.build_model("inception_resnet_v2", aux_logits=True)
    assert zrenie.list_models("inception_resnet*") == ["inception_resnet_v2"]
