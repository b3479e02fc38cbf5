"""U-Net whose encoder is a classification backbone (`model=unet model.kwargs.encoder=resnet34`).

Every zrenie backbone gives one feature map per resolution through `stage_features(x)`; a dry forward
pass reads their channels and strides, so any registered one serves as the encoder without a table per
architecture. The decoder is U-Net's: from the deepest map, 2x upsampling (`Upsample2x`), concatenation
with the encoder's map of that resolution, two 3x3 conv-BN-ReLU layers. Levels finer than the first
stage (a ResNet's first map is at stride 4, after its stem) have no skip. A level at stride s has
`width * s` channels: 256, 128, 64, 32, 16 at width 16 above a ResNet, the decoder widths of
segmentation_models_pytorch's Unet (which also takes the ResNet stem's stride-2 map as a skip;
`stage_features` starts at layer1).

The backbone's classifier is removed, so `encoder` holds only what `stage_features` runs and its
state_dict keys are the classification model's without the head: a torchvision/timm weight file or a
zrenie classification run loads into it (`load_segmentation_weights`, used by `model.weights=`).
"""

from __future__ import annotations


import torch
from torch import Tensor, nn

from zrenie.errors import ConfigError
from zrenie.nn.encoder import build_encoder, probe_stages
from zrenie.nn.layers import Upsample2x, match_size
from zrenie.nn.transfer import _set_batchnorm_frozen, load_pretrained
from zrenie.tasks.segment.models import double_conv

class EncoderUNet(nn.Module):
    """U-Net on a classification backbone: its stage maps are the skip connections of a U-Net decoder.

    Args:
        encoder: a backbone with `stage_features(x)` (see `build_encoder`).
        num_classes: output channels.
        in_channels: channels of the input images (for the dry forward pass).
        width: channels of the full-resolution decoder level; a level at stride s has `width * s`.
        upsample: "transposed", "resize_conv" or "nearest" (`Upsample2x`); "max_unpool" needs pooling
            indices, which a backbone's stage maps do not carry.
        name: the encoder's registered name, for messages.
    """

    def __init__(self, encoder: nn.Module, num_classes: int, in_channels: int = 3, width: int = 16,
                 upsample: str = "transposed", name: str = "encoder"):
        super().__init__()
        if upsample == "max_unpool":
            raise ConfigError(f"model.kwargs.upsample=max_unpool needs max-pooling indices, which the {name} "
                              f"encoder does not give; use transposed, resize_conv or nearest")
        if width < 1:
            raise ConfigError(f"model.width: expected >= 1, got {width}")
        channels, strides = probe_stages(encoder, in_channels)
        self.encoder, self.encoder_name = encoder, name
        # one skip per resolution: the deepest stage map at that stride
        skip_at = {s: i for i, s in enumerate(strides[:-1]) if s < strides[-1]}
        self.skips: list[int | None] = []
        ups, blocks, c = [], [], channels[-1]
        stride = strides[-1] // 2
        while stride >= 1:  # every 2x step from the deepest map to the input's resolution
            skip = skip_at.get(stride)
            out = width * stride
            ups.append(Upsample2x(c, out, upsample))
            blocks.append(double_conv(out + (channels[skip] if skip is not None else 0), out))
            self.skips.append(skip)
            c, stride = out, stride // 2
        self.ups, self.decoder = nn.ModuleList(ups), nn.ModuleList(blocks)
        self.head = nn.Conv2d(c, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x: Tensor[B, C, H, W] -> logits Tensor[B, K, H, W], for any H and W the backbone takes."""
        maps = self.encoder.stage_features(x)
        y = maps[-1]  # (B, c, H/s, W/s), s the deepest stride
        for up, block, skip in zip(self.ups, self.decoder, self.skips):
            y = up(y)  # (B, out, 2h, 2w)
            if skip is not None:  # an upsampled odd map is one pixel off its skip: pad or crop it
                y = torch.cat([maps[skip], match_size(y, maps[skip])], 1)
            y = block(y)
        return self.head(match_size(y, x))


def encoder_unet(encoder: str, num_classes: int, in_channels: int = 3, width: int | None = None,
                 upsample: str = "transposed", encoder_kwargs: dict | None = None) -> EncoderUNet:
    """`unet` with `model.kwargs.encoder=NAME` (and `model.kwargs.encoder_kwargs={small_input: true}`)."""
    backbone = build_encoder(encoder, in_channels, encoder_kwargs)
    return EncoderUNet(backbone, num_classes, in_channels, 16 if width is None else width, upsample, encoder)


def pretrained_part(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The part of a segmentation model that classification weights fit, and its attribute name: an
    `EncoderUNet`'s `encoder`, a DeepLab's `backbone`; None for a model without one (the plain U-Net)."""
    if isinstance(model, EncoderUNet):
        return "encoder", model.encoder
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module) and callable(getattr(backbone, "stage_features", None)):
        return "backbone", backbone
    return None


def load_segmentation_weights(model: nn.Module, state: dict[str, Tensor], where: str) -> str:
    """Loads a weight file into a segmentation model, strictly; a mismatch is one CheckpointError.

    A file that holds every key of the model (a segmentation weight file, a segmentation run) loads
    into the whole model. Any other loads into the pretrained part (`pretrained_part`): a classification
    file whose classifier (`fc.*`, `classifier.*`, auxiliary heads: keys under names the part lacks) is
    left out, once the file holds every key of the part.

    Returns:
        what was loaded: "model", "encoder" or "backbone".
    """
    part = pretrained_part(model)
    if part is None or all(k in state for k in model.state_dict()):
        load_pretrained(model, state, where)
        return "model"
    name, module = part
    own = module.state_dict()
    if all(k in state for k in own):
        tops = {k.split(".")[0] for k in own}
        state = {k: v for k, v in state.items() if k.split(".")[0] in tops}
    label = getattr(model, "encoder_name", type(module).__name__)
    load_pretrained(module, state, f"{where} (into the {label} {name})")
    return name


def freeze_pretrained(model: nn.Module) -> str:
    """Freezes the pretrained part, its batchnorm statistics included, so that only the decoder trains.

    Returns:
        the attribute name of the frozen part.
    """
    part = pretrained_part(model)
    if part is None:
        raise ConfigError(f"model.finetune=frozen trains a decoder on a pretrained encoder, and "
                          f"{type(model).__name__} has none; use model=unet model.kwargs.encoder=resnet34")
    name, module = part
    module.requires_grad_(False)
    _set_batchnorm_frozen(module, True)
    return name
