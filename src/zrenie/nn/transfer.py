"""Transfer learning: pretrained weight files, head replacement, freezing and gradual unfreezing."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from zrenie.errors import CheckpointError


def read_weights(path: str | Path) -> dict[str, Tensor]:
    """A state_dict from a torchvision/timm `.pth`, a `.safetensors` file or a zrenie checkpoint.

    Wrappers are unpeeled (`{"state_dict": ...}`, `{"model": ...}`, a zrenie checkpoint's EMA
    weights when it kept them) and DDP's `module.` prefix is stripped. Pickle files load with
    `weights_only=True`: one that needs arbitrary objects is refused.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"{path}: not a readable .safetensors file ({err})") from None
    else:
        from zrenie.nn.checkpoint import FORMAT, eval_weights, read_torch_file, upgrade

        state = read_torch_file(path)
        if isinstance(state, dict) and state.get("format") == FORMAT:
            state = upgrade(state, str(path))
            if len(state["models"]) != 1:
                raise CheckpointError(f"{path}: holds models {sorted(state['models'])}; weights for one are needed")
            state = eval_weights(state, next(iter(state["models"])))
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds no state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_pretrained(model: nn.Module, state: dict[str, Tensor], where: str) -> list[str]:
    """Loads every matching tensor; only classifier outputs may differ (they stay freshly initialised).

    A classifier output is a Linear layer (the main head or an auxiliary one) whose tensors differ
    from the file's in the output dimension only: the same layer for another number of classes.

    Returns:
        the keys left at their initial values (the replaced heads).
    """
    own = model.state_dict()
    linear = {f"{name}.{p}" for name, m in model.named_modules() if isinstance(m, nn.Linear) for p in ("weight", "bias")}
    heads = {k for k in linear if k in state and k in own and state[k].shape[1:] == own[k].shape[1:]}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and state[k].shape != own[k].shape]
    replaced = [k for k in mismatched if k in heads]
    wrong = [k for k in mismatched if k not in heads]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append("shape of " + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                                                  for k in wrong[:3]))
        if missing:
            parts.append("missing " + ", ".join(missing[:3]))
        if unexpected:
            parts.append("unexpected " + ", ".join(unexpected[:3]))
        raise CheckpointError(f"{where}: weights are for another architecture ({'; '.join(parts)})")
    model.load_state_dict({k: (own[k] if k in replaced else v) for k, v in state.items()})
    return replaced


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """A batchnorm that stays in eval mode: frozen layers keep their pretrained statistics.

    Same parameters and buffers (so the same state_dict keys) as `nn.BatchNorm2d`; `train()`
    cannot switch it back to batch statistics.
    """

    def train(self, mode: bool = True) -> "FrozenBatchNorm2d":
        return super().train(False)


def _set_batchnorm_frozen(module: nn.Module, frozen: bool) -> None:
    """Switches the batchnorm layers under `module` between normal and eval-locked.

    The class of each layer is swapped in place rather than the layer replaced, so the optimizer
    keeps pointing at the same parameter tensors when blocks are unfrozen mid-run.
    """
    for m in module.modules():
        if frozen and type(m) is nn.BatchNorm2d:
            m.__class__ = FrozenBatchNorm2d
            m.eval()
        elif not frozen and type(m) is FrozenBatchNorm2d:
            m.__class__ = nn.BatchNorm2d
            m.train(module.training)


def head_names(model: nn.Module) -> list[str]:
    """Top-level children that hold the classifier: the last Linear's top-level parent, and aux heads."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise CheckpointError(f"{type(model).__name__} has no Linear classifier to replace")
    tops = {names[-1].split(".")[0]}
    tops |= {n.split(".")[0] for n in names if n.split(".")[0].lower().startswith("aux")}
    return [n for n, _ in model.named_children() if n in tops]


def blocks(model: nn.Module) -> list[nn.Module]:
    """The top-level children below the head, input side first: the units of gradual unfreezing.

    A top-level ModuleList (a list of stages) counts as one block per stage.
    """
    heads = set(head_names(model))
    out = []
    for name, child in model.named_children():
        if name in heads:
            continue
        out += list(child) if isinstance(child, nn.ModuleList) else [child]
    return [m for m in out if any(True for _ in m.parameters())]


def set_trainable(model: nn.Module, trainable_blocks: int) -> None:
    """Trains the head plus the last `trainable_blocks` blocks; the rest are frozen, batchnorm included.

    `trainable_blocks=0` is a frozen feature extractor; a large number trains everything.
    """
    body = blocks(model)
    cut = max(0, len(body) - trainable_blocks)
    for i, block in enumerate(body):
        frozen = i < cut
        for p in block.parameters():
            p.requires_grad_(not frozen)
        _set_batchnorm_frozen(block, frozen)


def lr_multiplier_of(model: nn.Module, backbone_mult: float):
    """name -> learning-rate multiplier: 1 for the head, `backbone_mult` for pretrained layers."""
    heads = tuple(f"{n}." for n in head_names(model))
    return lambda name: 1.0 if name.startswith(heads) else backbone_mult
