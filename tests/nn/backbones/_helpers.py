"""What the backbone tests share: counting, building torchvision's twin of a model with its weights
loaded into ours, comparing their outputs, and checking the minimum input size."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Sequence

import pytest
import torch
import torchvision
from torch import nn

import zrenie
from zrenie.errors import ShapeError

from torch_helpers import randomize_batchnorm  # tests/ is on sys.path (conftest)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def state_shapes(model: nn.Module) -> dict[str, torch.Size]:
    """`state_dict` key -> shape, in the state_dict's order."""
    return {k: v.shape for k, v in model.state_dict().items()}


def changed_shapes(model: nn.Module, default: nn.Module) -> set[str]:
    """The keys of `model` whose shape differs from the same key in `default`."""
    reference = default.state_dict()
    return {k for k, v in model.state_dict().items() if v.shape != reference[k].shape}


def meta_twins(name: str, **kwargs) -> tuple[nn.Module, nn.Module]:
    """Ours and torchvision's model of the same name on the meta device: shapes without memory or
    init cost, so that even the largest variants are cheap to compare."""
    with torch.device("meta"):
        return zrenie.build_model(name, **kwargs), getattr(torchvision.models, name)(**kwargs)


def torchvision_with_aux(name: str, **kwargs) -> nn.Module:
    """torchvision's GoogLeNet or Inception-v3 with its auxiliary heads and its own init.

    Warnings are silenced: torchvision has warned about these models' init and aux defaults across
    versions, which is noise next to what the tests check.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(torchvision.models, name)(aux_logits=True, init_weights=True, **kwargs)




def torchvision_and_ours(name: str, make_reference: Callable[..., nn.Module] | None = None,
                         via_file: bool = False, skip_init: bool = False,
                         **kwargs) -> tuple[nn.Module, nn.Module]:
    """torchvision's model with random weights (and random BN statistics), and ours loaded from its
    state_dict (strict); both in eval mode.

    Args:
        name: our registered name; also torchvision's builder unless `make_reference` is given.
        make_reference: builds torchvision's model from `kwargs`.
        via_file: load through a saved file, as a user loads torchvision's weight files.
        skip_init: build ours on the meta device, so that no time goes into an init that the
            loaded tensors replace.
        kwargs: passed to both builders.
    """
    torch.manual_seed(0)
    make_reference = make_reference or getattr(torchvision.models, name)
    reference = randomize_batchnorm(make_reference(**kwargs)).eval()
    state = reference.state_dict()
    if via_file:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=True)
    with torch.device("meta") if skip_init else contextlib.nullcontext():
        ours = zrenie.build_model(name, **kwargs)
    ours.load_state_dict(state, strict=True, assign=skip_init)
    return reference, ours.eval()


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


def assert_same_logits(reference: nn.Module, ours: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


def assert_maps_equal(maps: Sequence[torch.Tensor], expected: dict[str, torch.Tensor],
                      nodes: Sequence[str]) -> None:
    """Each of our stage maps equals the reference's output at the node in the same place."""
    for got, node in zip(maps, nodes):
        torch.testing.assert_close(got, expected[node], rtol=1e-5, atol=1e-5)


@contextlib.contextmanager
def transform_input_on(*models: nn.Module):
    """Turns on the models' ImageNet-to-[-1, 1] input rescaling, and off again after."""
    for model in models:
        model.transform_input = True
    try:
        yield
    finally:
        for model in models:
            model.transform_input = False


def train_outputs(reference: nn.Module, ours: nn.Module, x: torch.Tensor) -> tuple:
    """Both models' training-mode outputs on `x` with the same dropout masks; back in eval mode after."""
    outputs = []
    try:
        with torch.no_grad():
            for model in (reference, ours):
                torch.manual_seed(1)  # the same dropout masks in both
                outputs.append(model.train()(x))
    finally:
        reference.eval(), ours.eval()
    expected, got = outputs
    return expected, got


def assert_fields_equal(got: tuple, expected: tuple) -> None:
    """Every field of our namedtuple output equals the reference's field of the same name."""
    for name in got._fields:
        torch.testing.assert_close(getattr(got, name), getattr(expected, name), rtol=1e-5, atol=1e-5)


def unchecked(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """`model`'s forward without its input size check, to see what its layers themselves take."""

    def run(x: torch.Tensor) -> torch.Tensor:
        size, model.min_input_size = model.min_input_size, 1
        try:
            return model(x)
        finally:
            model.min_input_size = size

    return run


def assert_size_errors(model: nn.Module, size: int, layers: Callable[[torch.Tensor], torch.Tensor],
                       too_small: tuple[int, int], match: str, batch: int = 1) -> None:
    """One pixel less than `size` breaks `layers`, and `model` rejects an input of `too_small`
    (H, W) with a one-line ShapeError matching `match`."""
    with pytest.raises(RuntimeError):  # one pixel less really breaks the network
        layers(torch.zeros(batch, 3, size - 1, size - 1))
    with pytest.raises(ShapeError, match=match) as err:
        model(torch.zeros(1, 3, *too_small))
    assert "\n" not in str(err.value)


def assert_minimum_input_size(model: nn.Module, size: int, layers: Callable[[torch.Tensor], torch.Tensor],
                              too_small: tuple[int, int], match: str, batch: int = 1) -> None:
    """`model` (1000 classes) declares and takes `size` x `size`, and `assert_size_errors` holds."""
    assert model.min_input_size == size
    assert model(torch.zeros(batch, 3, size, size)).shape == (batch, 1000)
    assert_size_errors(model, size, layers, too_small, match, batch)
