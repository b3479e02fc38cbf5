import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import zrenie
from zrenie.nn.backbones.spp_net import MIN_INPUT_SIZE, SpatialPyramidPool, spatial_pyramid_pool

from ._helpers import assert_minimum_input_size, n_params

# He et al. 2014: the ZF-5 trunk, (in_channels, out_channels, kernel) of conv1..conv5, and the
# dense layers after a pyramid of `bins` bins over conv5's 256 maps (1000 classes).
ZF5_CONVS = [(3, 96, 7), (96, 256, 5), (256, 384, 3), (384, 384, 3), (384, 256, 3)]


def dense_layers(bins: int) -> list[tuple[int, int]]:
    return [(256 * bins, 4096), (4096, 4096), (4096, 1000)]


def naive_pyramid_pool(x: torch.Tensor, levels: list[int]) -> torch.Tensor:
    """Plain loops: bin i of n along a side of a pixels covers [floor(i a / n), ceil((i + 1) a / n))."""
    b, c, h, w = x.shape
    out = []
    for n in levels:
        grid = torch.empty(b, c, n, n)
        for i in range(n):
            for j in range(n):
                rows = slice(math.floor(i * h / n), math.ceil((i + 1) * h / n))
                cols = slice(math.floor(j * w / n), math.ceil((j + 1) * w / n))
                grid[:, :, i, j] = x[:, :, rows, cols].amax(dim=(2, 3))
        out.append(grid.flatten(1))
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("levels, bins, expected",
                         [((1, 2, 3, 6), 50, 77_037_672), ((1, 2, 4), 21, 46_628_968)])
def test_parameter_count_equals_a_hand_count_of_the_layer_table(levels, bins, expected):
    by_hand = sum(k * k * c_in * c_out + c_out for c_in, c_out, k in ZF5_CONVS)
    by_hand += sum(n_in * n_out + n_out for n_in, n_out in dense_layers(bins))
    assert by_hand == expected  # the figures in the module docstring
    with torch.device("meta"):
        model = zrenie.build_model("spp_net", levels=levels)
    assert model.classifier[0].in_features == 256 * bins and n_params(model) == expected


@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (1, 4, 13, 13), (1, 2, 3, 11)])
def test_pyramid_pool_equals_a_naive_loop(shape):
    torch.manual_seed(0)
    x = torch.randn(shape)
    levels = [1, 2, 3, 6]  # 6 > 5 and 6 > 3: bins smaller than a pixel repeat pixels
    layer = SpatialPyramidPool(levels)
    out = layer(x)
    assert out.shape == (shape[0], shape[1] * 50) == (shape[0], layer.out_features(shape[1]))
    torch.testing.assert_close(out, naive_pyramid_pool(x, levels), rtol=0, atol=0)


def test_pyramid_pool_on_13x13_equals_the_papers_sliding_windows():
    # He et al., Sec. 2.3: level n on an a x a map pools windows of ceil(a/n) with stride floor(a/n).
    torch.manual_seed(0)
    x = torch.randn(2, 8, 13, 13)
    windows = [F.max_pool2d(x, math.ceil(13 / n), math.floor(13 / n)).flatten(1) for n in (6, 3, 2, 1)]
    torch.testing.assert_close(spatial_pyramid_pool(x, (6, 3, 2, 1)), torch.cat(windows, 1), rtol=0, atol=0)


def test_classifier_takes_any_input_size():
    torch.manual_seed(0)
    model = zrenie.build_model("spp_net", num_classes=10).eval()
    with torch.no_grad():
        for size in (96, 128, 160, 123):
            assert model(torch.rand(2, 3, size, size + 8)).shape == (2, 10)
        maps = model.stage_features(torch.rand(1, 3, 224, 224))
    assert [tuple(m.shape) for m in maps] == [(1, 96, 110, 110), (1, 256, 26, 26), (1, 256, 13, 13)]


def test_small_input_takes_32x32():
    torch.manual_seed(0)
    model = zrenie.build_model("spp_net", num_classes=10, small_input=True, levels=(1, 2, 4)).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        maps = model.stage_features(x)
        torch.testing.assert_close(model.classifier(spatial_pyramid_pool(maps[-1], (1, 2, 4))), model(x))
    assert [tuple(m.shape) for m in maps] == [(2, 96, 32, 32), (2, 256, 16, 16), (2, 256, 8, 8)]


@pytest.mark.parametrize("small_input", [False, True])
def test_minimum_input_size_is_exact_and_smaller_inputs_raise_one_line(small_input):
    size = MIN_INPUT_SIZE[small_input]
    with torch.device("meta"):  # the size checks are shape computations: no data needed
        model = zrenie.build_model("spp_net", small_input=small_input)
        # The pyramid pools adaptively, so it is the trunk that one pixel less breaks.
        assert_minimum_input_size(model, size, model.features, too_small=(size - 1, size - 1),
                                  match=f"spp_net: .*minimum {size}x{size}")


def test_builder_options():
    with torch.device("meta"):
        model = zrenie.build_model("spp_net", num_classes=7, in_channels=1, dropout=0.25, norm="batch")
    assert model.features[0][0].in_channels == 1 and model.classifier[-1].out_features == 7
    assert [m.p for m in model.classifier if isinstance(m, nn.Dropout)] == [0.25, 0.25]
    assert "spp_net" in zrenie.list_models()
