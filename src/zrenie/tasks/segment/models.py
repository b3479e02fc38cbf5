"""Segmentation networks of the course: the naive FCN, U-Net and its variants, SegNet, FCN-32s/16s/8s.

Every model maps Tensor[B, C, H, W] to logits Tensor[B, K, H, W] at the input's resolution, for any
H and W (odd sizes included: a map upsampled from an odd size is padded to its skip connection).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zrenie.errors import ConfigError
from zrenie.nn.backbones.vgg import CONFIGS, make_layers
from zrenie.nn.layers import ConvBNAct, Upsample2x, bilinear_upsample_weight, match_size
from zrenie.registry import MODELS

DOWN_MODES = ("maxpool", "strided")


class NaiveFCN(nn.Module):
    """The lecture's first try: 3x3 conv-BN-ReLU layers at full resolution and a per-pixel classifier.

    No pooling, so each pixel sees only a (2 * depth + 1)-pixel window: enough for texture and colour,
    too little for the shape of an object, which is what the encoder-decoders below fix.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32, depth: int = 6):
        super().__init__()
        layers = [ConvBNAct(in_channels if i == 0 else width, width, 3) for i in range(depth)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """U-Net's unit: two 3x3 conv-BN-ReLU layers (padded, so the map keeps its size)."""
    return nn.Sequential(ConvBNAct(in_channels, out_channels, 3), ConvBNAct(out_channels, out_channels, 3))


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015): a contracting path of double convolutions and 2x downsampling, an
    expanding path of 2x upsampling, concatenation with the skip of the same resolution, double convolution.

    Departures from the paper, on purpose: padded convolutions (the output has the input's size, no
    cropping or overlap-tile), and batchnorm after each convolution (the paper predates it; the
    convolutions then have no bias). The channel layout is the paper's: width * (1, 2, 4, 8, 16).

    Args:
        num_classes: output channels (1 for a binary loss on one object logit).
        width: channels of the first level (64 in the paper).
        depth: number of 2x downsamplings (4 in the paper).
        upsample: "transposed" (the paper), "resize_conv", "nearest" or "max_unpool" (`Upsample2x`).
        down: "maxpool" (the paper) or "strided" (a 3x3 stride-2 convolution instead of each pool).
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 64, depth: int = 4,
                 upsample: str = "transposed", down: str = "maxpool"):
        super().__init__()
        if down not in DOWN_MODES:
            raise ConfigError(f"model.kwargs.down: expected one of {', '.join(DOWN_MODES)}, got {down!r}")
        if upsample == "max_unpool" and down != "maxpool":
            raise ConfigError("model.kwargs.upsample=max_unpool needs down=maxpool (it reuses the pooling indices)")
        if depth < 1:
            raise ConfigError(f"model.kwargs.depth: expected >= 1, got {depth}")
        widths = [width * 2 ** i for i in range(depth + 1)]
        self.down_mode = down
        self.encoder = nn.ModuleList([double_conv(in_channels if i == 0 else widths[i - 1], w)
                                      for i, w in enumerate(widths)])
        self.downs = nn.ModuleList([nn.MaxPool2d(2, 2, return_indices=upsample == "max_unpool") if down == "maxpool"
                                    else ConvBNAct(w, w, 3, 2) for w in widths[:-1]])
        self.ups = nn.ModuleList([Upsample2x(widths[i + 1], widths[i], upsample) for i in reversed(range(depth))])
        self.decoder = nn.ModuleList([double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips, pools = [], []
        for block, down in zip(self.encoder, self.downs):
            x = block(x)
            skips.append(x)
            x = down(x)
            if isinstance(x, tuple):  # max pooling that keeps its indices for max unpooling
                x, indices = x
                pools.append(indices)
        x = self.encoder[-1](x)
        for up, block in zip(self.ups, self.decoder):
            skip = skips.pop()
            x = up(x, pools.pop(), skip.shape[-2:]) if pools else up(x)
            x = block(torch.cat([skip, match_size(x, skip)], 1))
        return self.head(x)


# SegNet's encoder is VGG-16-BN's 13 convolutions (torchvision's config "D"); the decoder mirrors it.
SEGNET_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class SegNet(nn.Module):
    """SegNet (Badrinarayanan et al. 2017): the 13 convolutions of VGG-16-BN as the encoder, and a decoder
    that max-unpools with the encoder's pooling indices (no learnt upsampling, no skip features) and
    mirrors each encoder convolution with a 3x3 conv-BN-ReLU; the last one is a 3x3 convolution to K.

    Args:
        num_classes: output channels.
        in_channels: input channels.
        width: channels of the first block (the paper's 64); every block scales with it, so that the
            five-loss study can train SegNet on the same budget as narrow U-Nets.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 64):
        super().__init__()
        blocks = tuple(tuple(max(1, w * width // 64) for w in block) for block in SEGNET_BLOCKS)
        enc, c = [], in_channels
        for block in blocks:
            enc.append(nn.Sequential(*[ConvBNAct(c if i == 0 else w, w, 3) for i, w in enumerate(block)]))
            c = block[-1]
        self.encoder = nn.ModuleList(enc)
        dec = []
        for k in reversed(range(len(blocks))):  # the mirror image: the last layer narrows to the level above
            c = blocks[k][-1]
            layers: list[nn.Module] = [ConvBNAct(c, c, 3) for _ in blocks[k][:-1]]
            layers.append(ConvBNAct(c, blocks[k - 1][-1], 3) if k > 0 else nn.Conv2d(c, num_classes, 3, padding=1))
            dec.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList(dec)
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)

    def forward(self, x: Tensor) -> Tensor:
        indices, sizes = [], []
        for block in self.encoder:
            x = block(x)
            sizes.append(x.shape[-2:])
            x, idx = self.pool(x)
            indices.append(idx)
        for block in self.decoder:
            x = nn.functional.max_unpool2d(x, indices.pop(), 2, 2, output_size=sizes.pop())
            x = block(x)
        return x


class FCN(nn.Module):
    """FCN-32s, -16s and -8s on a VGG-16 trunk (Long et al. 2015).

    VGG-16's convolutions, its fully connected layers as convolutions (fc6: 7x7, 4096; fc7: 1x1, 4096;
    dropout 0.5 after each), a 1x1 class scorer, and upsampling: 16s adds the scores, upsampled 2x by
    a learnt transposed convolution initialised to bilinear, to scores of pool4 (whose scorer starts at
    zero); 8s also adds those of pool3; the last step to the input's size is fixed bilinear
    interpolation (the reference models' `upscore` layers with learning rate 0). Departure from the paper, on purpose: convolutions are padded (fc6
    by 3) instead of padding the input by 100 and cropping, so any input size maps to itself.

    Args:
        stride: 32, 16 or 8.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, stride: int = 8):
        super().__init__()
        if stride not in (32, 16, 8):
            raise ConfigError(f"fcn stride: expected 32, 16 or 8, got {stride}")
        self.stride = stride
        self.features = make_layers(CONFIGS["D"], batch_norm=False, in_channels=in_channels)
        self.fc = nn.Sequential(nn.Conv2d(512, 4096, 7, padding=3), nn.ReLU(inplace=True), nn.Dropout2d(0.5),
                                nn.Conv2d(4096, 4096, 1), nn.ReLU(inplace=True), nn.Dropout2d(0.5))
        self.score_fr = nn.Conv2d(4096, num_classes, 1)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1) if stride <= 16 else None
        self.score_pool3 = nn.Conv2d(256, num_classes, 1) if stride == 8 else None
        self.up2 = nn.ModuleList([self._bilinear(num_classes, 4) for _ in range({32: 0, 16: 1, 8: 2}[stride])])
        for scorer in (self.score_pool4, self.score_pool3):
            if scorer is not None:  # the paper starts the skip scorers at zero, so training begins as FCN-32s
                nn.init.zeros_(scorer.weight)
                nn.init.zeros_(scorer.bias)

    @staticmethod
    def _bilinear(channels: int, kernel: int) -> nn.ConvTranspose2d:
        up = nn.ConvTranspose2d(channels, channels, kernel, kernel // 2, kernel // 4, bias=False)
        with torch.no_grad():
            up.weight.copy_(bilinear_upsample_weight(channels, kernel))
        return up

    def forward(self, x: Tensor) -> Tensor:
        size, pools = x.shape[-2:], []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                pools.append(x)
        score = self.score_fr(self.fc(x))
        for up, (pool, scorer) in zip(self.up2, ((pools[3], self.score_pool4), (pools[2], self.score_pool3))):
            skip = scorer(pool)
            score = match_size(up(score), skip) + skip
        # the last upsampling is fixed bilinear interpolation, as in the paper's reference models
        return nn.functional.interpolate(score, size=size, mode="bilinear", align_corners=False)


def _check_classes(num_classes: int) -> None:
    if num_classes < 1:
        raise ConfigError(f"segmentation model needs at least one output class, got {num_classes}")


@MODELS.register("naive_fcn", tags=("segment",))
def naive_fcn(num_classes: int, in_channels: int = 3, width: int | None = None, depth: int = 6) -> NaiveFCN:
    _check_classes(num_classes)
    return NaiveFCN(num_classes, in_channels, width or 32, depth)


@MODELS.register("unet", tags=("segment",))
def unet(num_classes: int, in_channels: int = 3, width: int | None = None, depth: int | None = None,
         upsample: str = "transposed", down: str | None = None, encoder: str | None = None,
         encoder_kwargs: dict | None = None) -> nn.Module:
    """U-Net: the paper's, or with `encoder` a classification backbone as its contracting path.

    Args:
        width: the plain U-Net's first level (64); with `encoder`, the decoder's full-resolution level (16).
        depth: the plain U-Net's 2x downsamplings (4); with `encoder`, the backbone's stages set them.
        upsample: `Upsample2x` mode; with `encoder`, max_unpool is refused (no pooling indices).
        down: the plain U-Net's "maxpool" (default) or "strided".
        encoder: a registered classification backbone (`model.kwargs.encoder=resnet34`): `EncoderUNet`,
            whose encoder `model.weights=` loads as classify does.
        encoder_kwargs: the backbone's own options (`model.kwargs.encoder_kwargs={small_input: true}`).
    """
    _check_classes(num_classes)
    if encoder is None:
        if encoder_kwargs is not None:
            raise ConfigError("model.kwargs.encoder_kwargs needs model.kwargs.encoder (a backbone to pass them to)")
        return UNet(num_classes, in_channels, width or 64, 4 if depth is None else depth, upsample, down or "maxpool")
    if depth is not None or down is not None:
        raise ConfigError(f"model.kwargs.depth and down shape the plain U-Net's contracting path; with "
                          f"encoder={encoder} the backbone's stages set them")
    from zrenie.tasks.segment.models_encoder import encoder_unet  # it builds on this module's double_conv

    return encoder_unet(encoder, num_classes, in_channels, width, upsample, encoder_kwargs)


@MODELS.register("unet_strided", tags=("segment",))
def unet_strided(num_classes: int, in_channels: int = 3, width: int | None = None, depth: int = 4,
                 upsample: str = "transposed") -> UNet:
    """The homework's modified U-Net: strided convolutions instead of max pooling."""
    _check_classes(num_classes)
    return UNet(num_classes, in_channels, width or 64, depth, upsample, "strided")


@MODELS.register("segnet", tags=("segment",))
def segnet(num_classes: int, in_channels: int = 3, width: int | None = None) -> SegNet:
    _check_classes(num_classes)
    return SegNet(num_classes, in_channels, width or 64)


def _fcn(stride: int):
    def build(num_classes: int, in_channels: int = 3) -> FCN:
        _check_classes(num_classes)
        return FCN(num_classes, in_channels, stride)

    build.__doc__ = f"FCN-{stride}s on VGG-16 (Long et al. 2015)."
    return build


for _stride in (32, 16, 8):
    MODELS.register(f"fcn{_stride}s", tags=("segment",))(_fcn(_stride))

