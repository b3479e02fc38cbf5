"""`model.weights=FILE` for detectors: a whole detector, or a classification backbone under a zrenie one."""

from __future__ import annotations

from torch import nn

from zrenie.errors import ConfigError
from zrenie.nn.transfer import load_pretrained, read_weights


def load_detector_weights(model: nn.Module, path: str) -> str:
    """Loads `path` into `model`; returns what it went into: "model" or "backbone".

    torchvision's detectors take their own weight files (`load_weights`, which also handles another
    class count). A zrenie detector takes a file of all its keys (an exported detect run) as it is, or a
    classification file (torchvision/timm weights, a classify run's best.pt) into its backbone, the
    classifier left out: the backbone's keys are the classification model's without its head.
    """
    loader = getattr(model, "load_weights", None)
    if callable(loader):
        loader(path)
        return "model"
    state = read_weights(path)
    if all(k in state for k in model.state_dict()):
        load_pretrained(model, state, path)
        return "model"
    backbone = getattr(model, "backbone", None)
    body = getattr(backbone, "body", None)
    if body is None:
        raise ConfigError(f"model.weights={path}: the file does not hold this detector's keys, and "
                          f"{type(model).__name__} has no classification backbone to load it into")
    tops = {k.split(".")[0] for k in body.state_dict()}
    load_pretrained(body, {k: v for k, v in state.items() if k.split(".")[0] in tops},
                    f"{path} (into the {backbone.name} backbone)")
    return "backbone"
