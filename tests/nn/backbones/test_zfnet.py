import pytest
import torch
from torch import nn

import zrenie
from zrenie.errors import ConfigError
from zrenie.nn.backbones.zfnet import MIN_INPUT_SIZE

from ._helpers import assert_minimum_input_size, n_params

# Zeiler & Fergus 2013, Fig. 3: (in_channels, out_channels, kernel) of conv1..conv5, then the
# (in_features, out_features) of fc6..fc8 (conv5's 256 maps pooled to 6x6, 1000 classes).
PAPER_CONVS = [(3, 96, 7), (96, 256, 5), (256, 384, 3), (384, 384, 3), (384, 256, 3)]
PAPER_DENSE = [(256 * 6 * 6, 4096), (4096, 4096), (4096, 1000)]
PAPER_PARAMS = 62_357_608  # the docstring's hand count


def test_parameter_count_equals_a_hand_count_of_the_papers_layer_table():
    by_hand = sum(k * k * c_in * c_out + c_out for c_in, c_out, k in PAPER_CONVS)
    by_hand += sum(n_in * n_out + n_out for n_in, n_out in PAPER_DENSE)
    assert by_hand == PAPER_PARAMS
    with torch.device("meta"):
        assert n_params(zrenie.build_model("zfnet")) == PAPER_PARAMS
        assert n_params(zrenie.build_model("zfnet", norm="none")) == PAPER_PARAMS  # LRN has no weights


def test_map_sizes_follow_the_papers_figure_3():
    torch.manual_seed(0)
    model = zrenie.build_model("zfnet", num_classes=10).eval()
    x = torch.rand(1, 3, 224, 224)
    pooled = []
    with torch.no_grad():
        maps = model.stage_features(x)
        h = x
        for layer in model.features:
            h = layer(h)
            if isinstance(layer, nn.MaxPool2d):
                pooled.append(h.shape[-1])
        assert model(x).shape == (1, 10)
    assert [tuple(m.shape) for m in maps] == [(1, 96, 110, 110), (1, 256, 26, 26), (1, 256, 13, 13)]
    assert pooled == [55, 13, 6]


def test_small_input_takes_32x32():
    torch.manual_seed(0)
    model = zrenie.build_model("zfnet", num_classes=10, small_input=True).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        maps = model.stage_features(x)
    assert [tuple(m.shape) for m in maps] == [(2, 96, 32, 32), (2, 256, 16, 16), (2, 256, 8, 8)]


@pytest.mark.parametrize("small_input", [False, True])
def test_minimum_input_size_is_exact_and_smaller_inputs_raise_one_line(small_input):
    size = MIN_INPUT_SIZE[small_input]
    with torch.device("meta"):  # the size checks are shape computations: no data needed
        model = zrenie.build_model("zfnet", small_input=small_input)
        assert_minimum_input_size(model, size, model.features, too_small=(size + 10, size - 1),
                                  match=f"minimum {size}x{size}")


def test_norm_options():
    with torch.device("meta"):
        lrn, batch, none = (zrenie.build_model("zfnet", norm=n) for n in ("lrn", "batch", "none"))
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in lrn.modules()) == 2
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in [*batch.modules(), *none.modules()])
    assert sum(isinstance(m, nn.BatchNorm2d) for m in batch.modules()) == 5
    assert batch.features[0][0].bias is None  # the batchnorm's shift replaces the conv bias
    with pytest.raises(ConfigError, match="norm"):
        zrenie.build_model("zfnet", norm="group")


def test_builder_options():
    with torch.device("meta"):
        model = zrenie.build_model("zfnet", num_classes=7, in_channels=1, dropout=0.2)
    assert model.features[0][0].in_channels == 1 and model.classifier[-1].out_features == 7
    assert [m.p for m in model.classifier if isinstance(m, nn.Dropout)] == [0.2, 0.2]
    assert "zfnet" in zrenie.list_models()
