import io
import warnings

import pytest
import torch
import torchvision
from torch import nn

import zrenie
from zrenie.errors import ShapeError
from zrenie.nn.backbones.googlenet import AUX_LOSS_WEIGHT, MIN_INPUT_SIZE, GoogLeNetOutputs, main_logits

# torchvision's GoogLeNet with both auxiliary heads and 1000 classes; its weights' meta["num_params"]
# (6,624,904) counts the model after the heads are removed.
TORCHVISION_PARAMS = 13_004_888
TORCHVISION_PARAMS_NO_AUX = 6_624_904


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def torchvision_googlenet(**kwargs) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchvision.models.googlenet(aux_logits=True, init_weights=True, **kwargs)


def randomize_batchnorm(model: nn.Module) -> nn.Module:
    """Random BN scales, shifts and running statistics, so that a swapped BN cannot go unnoticed."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def outputs_of(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The outputs of the named submodules of `model` during `model(x)`."""
    outputs = {}
    hooks = [getattr(model, name).register_forward_hook(
        lambda module, args, out, name=name: outputs.__setitem__(name, out)) for name in names]
    try:
        model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


@pytest.fixture(scope="module")
def torchvision_and_ours():
    """torchvision's GoogLeNet with random weights, and ours loaded from its saved state_dict (strict)."""
    torch.manual_seed(0)
    reference = randomize_batchnorm(torchvision_googlenet())
    buffer = io.BytesIO()
    torch.save(reference.state_dict(), buffer)
    buffer.seek(0)
    with torch.device("meta"):  # skips our own initialisation: the file replaces every tensor
        ours = zrenie.build_model("googlenet")
    ours.load_state_dict(torch.load(buffer, weights_only=True), strict=True, assign=True)
    return reference.eval(), ours.eval()


def test_parameter_count_and_state_dict_equal_torchvision():
    with torch.device("meta"):  # shapes without memory or init cost
        ours, reference = zrenie.build_model("googlenet"), torchvision_googlenet()
        no_aux = zrenie.build_model("googlenet", aux_logits=False)
    assert n_params(ours) == n_params(reference) == TORCHVISION_PARAMS
    assert n_params(no_aux) == TORCHVISION_PARAMS_NO_AUX
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, v.shape) for k, v in reference.state_dict().items()]


def test_eval_logits_equal_torchvision(torchvision_and_ours):
    reference, ours = torchvision_and_ours
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
        reference.transform_input = ours.transform_input = True
        try:
            torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
        finally:
            reference.transform_input = ours.transform_input = False


def test_train_outputs_with_aux_heads_equal_torchvision(torchvision_and_ours):
    reference, ours = torchvision_and_ours
    x = torch.randn(2, 3, 64, 64)
    outputs = []
    try:
        with torch.no_grad():
            for model in (reference, ours):
                torch.manual_seed(1)  # the same dropout masks in both
                outputs.append(model.train()(x))
    finally:
        reference.eval(), ours.eval()
    expected, got = outputs
    assert isinstance(got, GoogLeNetOutputs) and len(got) == 3
    for name in GoogLeNetOutputs._fields:
        torch.testing.assert_close(getattr(got, name), getattr(expected, name), rtol=1e-5, atol=1e-5)
    assert main_logits(got) is got.logits and main_logits(got.logits) is got.logits
    assert AUX_LOSS_WEIGHT == 0.3


def test_stage_features_equal_torchvision_outputs_before_each_downsampling(torchvision_and_ours):
    reference, ours = torchvision_and_ours
    nodes = ["conv1", "conv3", "inception3b", "inception4e", "inception5b"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = outputs_of(reference, nodes, x)
        maps = ours.stage_features(x)
    assert [tuple(m.shape[1:]) for m in maps] == \
        [(64, 32, 32), (192, 16, 16), (480, 8, 8), (832, 4, 4), (1024, 2, 2)]
    for got, node in zip(maps, nodes):
        torch.testing.assert_close(got, expected[node], rtol=1e-5, atol=1e-5)


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
    changed = {k for k, v in model.state_dict().items() if v.shape != default.state_dict()[k].shape}
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
        model.min_input_size = 1
        with pytest.raises(RuntimeError):  # one pixel less really breaks the network
            model.eval()(torch.zeros(2, 3, size - 1, size - 1))
        model.min_input_size = size
        with pytest.raises(ShapeError, match=f"minimum {size}x{size}") as err:
            model(torch.zeros(1, 3, size - 1, size + 10))
    assert "\n" not in str(err.value)


def test_builder_options():
    with torch.device("meta"):
        model = zrenie.build_model("googlenet", num_classes=7, in_channels=1, dropout=0.1, dropout_aux=0.5)
        plain = zrenie.build_model("googlenet", aux_logits=False).train()
        assert plain(torch.zeros(2, 3, 64, 64)).shape == (2, 1000)  # no tuple without aux heads
    assert model.conv1.conv.in_channels == 1 and model.fc.out_features == 7
    assert model.dropout.p == 0.1 and model.aux1.dropout.p == model.aux2.dropout.p == 0.5
    assert not hasattr(plain, "aux1") and not plain.transform_input
    with pytest.raises(TypeError):
        zrenie.build_model("googlenet", no_such_option=1)
    assert zrenie.list_models("googlenet") == ["googlenet"]
