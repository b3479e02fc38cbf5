"""Segmentation models: parameter counts worked out by hand from the papers' layouts, outputs at the
input's size for odd sizes, and every U-Net variant of the homework."""

import pytest
import torch

import zrenie.tasks.segment.models  # noqa: F401  (registers the models)
from zrenie.errors import ConfigError
from zrenie.nn.backbones.vgg import CONFIGS
from zrenie.registry import MODELS


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def on_meta(name, **kwargs):
    with torch.device("meta"):
        return MODELS.get(name)(**kwargs)


def conv(cin, cout, k=3, bias=False, bn=True):
    """Parameters of a k x k convolution (+ batchnorm scale and shift)."""
    return k * k * cin * cout + (cout if bias else 0) + (2 * cout if bn else 0)


def test_unet_has_the_papers_layout():
    """Ronneberger et al. 2015, Fig. 1: 64-128-256-512-1024, 2x2 up-convolutions halving the channels, a 1x1
    classifier (1 input channel, 2 classes); here with batchnorm and without conv biases."""
    widths = [64, 128, 256, 512, 1024]
    expected = conv(1, 64) + conv(64, 64)
    for a, b in zip(widths, widths[1:]):
        expected += conv(a, b) + conv(b, b)  # contracting path
        expected += 2 * 2 * b * a + a  # up-convolution (with bias)
        expected += conv(2 * a, a) + conv(a, a)  # after concatenation with the skip
    expected += 64 * 2 + 2  # 1x1 classifier
    assert n_params(on_meta("unet", num_classes=2, in_channels=1)) == expected


def test_segnet_matches_its_layout_and_the_papers_size():
    """Badrinarayanan et al. 2017: VGG-16's 13 convolutions and their mirror image; the paper's SegNet has
    29.5M trainable parameters (Caffe convolutions keep their biases, 7,912 of them here)."""
    enc = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
           (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    dec = [(512, 512)] * 5 + [(512, 256), (256, 256), (256, 256), (256, 128), (128, 128), (128, 64), (64, 64)]
    expected = sum(conv(a, b) for a, b in enc + dec) + conv(64, 11, bias=True, bn=False)
    model = on_meta("segnet", num_classes=11)  # CamVid's 11 classes
    assert n_params(model) == expected
    biases = sum(b for _, b in enc + dec)
    assert (n_params(model) + biases) / 29.5e6 == pytest.approx(1, abs=0.005)
    narrow = [(a if a == 3 else a // 8, b // 8) for a, b in enc + dec]  # width=8: every block at 1/8
    assert n_params(on_meta("segnet", num_classes=11, width=8)) == (
        sum(conv(a, b) for a, b in narrow) + conv(8, 11, bias=True, bn=False))


@pytest.mark.parametrize("name, skips", [("fcn32s", ()), ("fcn16s", (512,)), ("fcn8s", (512, 256))])
def test_fcn_counts_vgg16_fc_as_convolutions_and_the_skip_scorers(name, skips):
    k = 21  # Pascal VOC
    trunk = 0
    cin = 3
    for v in CONFIGS["D"]:
        if v != "M":
            trunk += conv(cin, v, bias=True, bn=False)
            cin = v
    fc = conv(512, 4096, 7, bias=True, bn=False) + conv(4096, 4096, 1, bias=True, bn=False)
    scorers = conv(4096, k, 1, bias=True, bn=False) + sum(conv(c, k, 1, bias=True, bn=False) for c in skips)
    ups = len(skips) * 4 * 4 * k * k  # learnt 2x upsamplings, no bias
    model = on_meta(name, num_classes=k)
    assert n_params(model) == trunk + fc + scorers + ups
    assert n_params(model) / 134e6 == pytest.approx(1, abs=0.01)  # the paper's Table 1: FCN-VGG16, 134M


@pytest.mark.parametrize("name", ["naive_fcn", "unet", "unet_strided", "segnet", "fcn8s"])
def test_logits_at_the_input_size_for_odd_sizes(name):
    kwargs = {"width": 8} if name in ("unet", "unet_strided", "naive_fcn") else {}
    model = MODELS.get(name)(num_classes=3, **kwargs).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 37, 45)).shape == (1, 3, 37, 45)


@pytest.mark.parametrize("upsample", ["transposed", "resize_conv", "nearest", "max_unpool"])
def test_every_unet_upsampling_trains(upsample):
    model = MODELS.get("unet")(num_classes=2, width=4, depth=2, upsample=upsample)
    x = torch.randn(2, 3, 17, 19)
    loss = model(x).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unet_variants_are_one_line_errors():
    with pytest.raises(ConfigError, match="upsample: expected one of"):
        MODELS.get("unet")(num_classes=2, upsample="pixelshuffle")
    with pytest.raises(ConfigError, match="max_unpool needs down=maxpool"):
        MODELS.get("unet")(num_classes=2, upsample="max_unpool", down="strided")
    assert "segment" in MODELS.tags("unet")


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_torchvision_segmentation_weights_load_strictly_and_give_the_same_logits(name):
    from torchvision.models import segmentation

    builder = getattr(segmentation, name)
    reference = builder(weights=None, weights_backbone=None, num_classes=21, aux_loss=True).eval()
    weights_enum = {"fcn_resnet50": segmentation.FCN_ResNet50_Weights,
                    "deeplabv3_resnet50": segmentation.DeepLabV3_ResNet50_Weights}[name]
    assert n_params(on_meta(name, num_classes=21)) == weights_enum.COCO_WITH_VOC_LABELS_V1.meta["num_params"]
    ours = MODELS.get(name)(num_classes=21).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, 33, 47)
    with torch.no_grad():
        assert torch.allclose(ours(x), reference(x)["out"], atol=1e-5)
    ours.train()
    out, aux = ours(x.expand(2, -1, -1, -1))  # training: the auxiliary head's logits too, for the 0.5-weighted loss
    assert out.shape == aux.shape == (2, 21, 33, 47)


def test_deeplab_aspp_on_a_small_backbone_and_its_rates():
    model = MODELS.get("deeplab_aspp")(num_classes=3, backbone="resnet18", output_stride=8, rates=[2, 4, 6]).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 37, 45)).shape == (1, 3, 37, 45)
    assert [branch[0].dilation for branch in model.classifier[0].convs[1:4]] == [(2, 2), (4, 4), (6, 6)]
    with pytest.raises(ConfigError, match="output_stride: expected 8 or 16"):
        MODELS.get("deeplab_aspp")(num_classes=3, output_stride=32)
