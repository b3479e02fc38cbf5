"""DeepLabV3 and LR-ASPP on MobileNetV3-Large against torchvision's builders: torchvision's weight files
load strictly and give the same logits, in eval mode and (with the same dropout draws) in training."""

import io

import pytest
import torch
from torchvision.models import segmentation

from zrenie.errors import ConfigError
from zrenie.registry import MODELS

from torch_helpers import randomize_batchnorm  # tests/ is on sys.path (conftest)

# torchvision's builders with the options its COCO-with-VOC-labels weight files were saved from.
REFERENCES = {
    "deeplabv3_mobilenet_v3_large": (segmentation.deeplabv3_mobilenet_v3_large, {"aux_loss": True},
                                     segmentation.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1),
    "lraspp_mobilenet_v3_large": (segmentation.lraspp_mobilenet_v3_large, {},
                                  segmentation.LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1),
}


def n_params(model):
    return sum(p.numel() for p in model.parameters())




def saved_and_loaded(state):
    """`state` through a weight file, as a user loads torchvision's."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def train_outputs(model, x):
    """Training-mode outputs with seeded dropout draws, without gradients."""
    torch.manual_seed(1)
    with torch.no_grad():
        return model.train()(x)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_torchvision_weights_load_strictly_and_give_the_same_logits(name):
    builder, options, weights = REFERENCES[name]
    torch.manual_seed(0)
    reference = randomize_batchnorm(builder(weights=None, weights_backbone=None, num_classes=21, **options)).eval()
    ours = MODELS.get(name)(num_classes=21).eval()
    assert n_params(ours) == n_params(reference) == weights.meta["num_params"]
    ours.load_state_dict(saved_and_loaded(reference.state_dict()), strict=True)
    x = torch.randn(1, 3, 65, 47)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x)["out"], rtol=1e-5, atol=1e-5)
    # Training: batch statistics and the same dropout draws; DeepLabV3 adds the aux head's logits for the
    # 0.5-weighted loss, as deeplabv3_resnet50 does.
    x = torch.randn(2, 3, 64, 64)
    expected, got = train_outputs(reference, x), train_outputs(ours, x)
    if "aux" in expected:
        assert isinstance(got, tuple) and got[0].shape == got[1].shape == (2, 21, 64, 64)
        torch.testing.assert_close(got[1], expected["aux"], rtol=1e-5, atol=1e-5)
        got = got[0]
    torch.testing.assert_close(got, expected["out"], rtol=1e-5, atol=1e-5)


def test_deeplab_without_aux_has_torchvision_keys_and_returns_the_logits_in_training():
    with torch.device("meta"):
        reference = segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
        ours = MODELS.get("deeplabv3_mobilenet_v3_large")(num_classes=21, aux_loss=False)
    assert reference.aux_classifier is None  # torchvision's default
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    assert n_params(ours) == n_params(reference)
    model = MODELS.get("deeplabv3_mobilenet_v3_large")(num_classes=2, aux_loss=False).train()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 2, 32, 32)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_other_channels_classes_and_odd_sizes(name):
    model = MODELS.get(name)(num_classes=3, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 37, 45)).shape == (1, 3, 37, 45)
    assert "segment" in MODELS.tags(name)


def test_lraspp_has_no_aux_head():
    with pytest.raises(ConfigError, match="no auxiliary head"):
        MODELS.get("lraspp_mobilenet_v3_large")(num_classes=3, aux_loss=True)
