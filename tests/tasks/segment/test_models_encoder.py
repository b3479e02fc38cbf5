"""U-Net on a classification backbone (`model=unet model.kwargs.encoder=resnet34`) and `model.weights=` into its
encoder, against torchvision's ResNets and segmentation_models_pytorch."""

import pytest
import torch
import torchvision

import zrenie
from zrenie.config import build_config
from zrenie.engine.optim import build_optimizer
from zrenie.errors import CheckpointError, ConfigError
from zrenie.nn.checkpoint import build_from_spec, load_run, save_checkpoint
from zrenie.nn.transfer import FrozenBatchNorm2d, read_weights
from zrenie.registry import MODELS
from zrenie.tasks import get_task
from zrenie.tasks.segment.models_encoder import EncoderUNet, load_segmentation_weights


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def torchvision_features(net: torchvision.models.ResNet, x: torch.Tensor) -> list[torch.Tensor]:
    """layer1..layer4 of a torchvision ResNet, by its own modules."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    maps = []
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        x = layer(x)
        maps.append(x)
    return maps


@pytest.fixture(scope="module")
def tv_resnet34_file(tmp_path_factory):
    """A torchvision ResNet-34 with random weights and random batchnorm statistics, and its state_dict file."""
    torch.manual_seed(0)
    net = torchvision.models.resnet34()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # not 0 and 1, so that loading them is seen
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("weights") / "resnet34.pth"
    torch.save(net.state_dict(), path)
    return net.eval(), path


@pytest.fixture(scope="module")
def resnet34_unet():
    return MODELS.get("unet")(num_classes=3, encoder="resnet34")


def test_encoder_features_equal_torchvision_resnet34_after_loading_its_state_dict(tv_resnet34_file, resnet34_unet):
    net, path = tv_resnet34_file
    assert load_segmentation_weights(resnet34_unet, read_weights(path), str(path)) == "encoder"
    resnet34_unet.eval()
    x = torch.randn(1, 3, 37, 30)
    with torch.no_grad():
        ours, theirs = resnet34_unet.encoder.stage_features(x), torchvision_features(net, x)
        assert resnet34_unet(x).shape == (1, 3, 37, 30)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_encoder_parameters_are_torchvision_resnet34_without_fc_and_smp_encoder(resnet34_unet):
    import segmentation_models_pytorch as smp

    net = torchvision.models.resnet34()
    reference = smp.Unet(encoder_name="resnet34", encoder_weights=None, classes=3)
    assert count(resnet34_unet.encoder) == count(net) - count(net.fc) == count(reference.encoder) == 21_284_672
    # the decoders differ (smp also skips from the stem, and upsamples without weights): no equality there
    assert count(resnet34_unet) - count(resnet34_unet.encoder) > 0


@pytest.mark.parametrize("encoder, kwargs, upsample, size", [
    ("resnet18", None, "transposed", (35, 27)),
    ("resnet18", {"small_input": True}, "nearest", (17, 22)),  # strides 1, 2, 4, 8: a skip at full resolution
    ("mobilenet_v2", {"width_mult": 0.35}, "resize_conv", (29, 50)),
    ("simple_cnn", {"width": 4}, "transposed", (21, 19)),
])
def test_output_has_the_input_size_for_odd_sizes(encoder, kwargs, upsample, size):
    model = MODELS.get("unet")(num_classes=2, encoder=encoder, encoder_kwargs=kwargs, upsample=upsample, width=4)
    x = torch.randn(1, 3, *size)
    out = model(x)
    assert out.shape == (1, 2, *size)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())  # every skip and level is used


@pytest.mark.parametrize("kwargs, match", [
    ({"encoder": "resnet18", "upsample": "max_unpool"}, "max_unpool needs max-pooling indices, which the resnet18"),
    ({"encoder": "resnet18", "depth": 3}, "depth and down shape the plain U-Net"),
    ({"encoder": "segnet"}, "expected a classification backbone"),
    ({"encoder_kwargs": {"small_input": True}}, "encoder_kwargs needs model.kwargs.encoder"),
    ({"encoder": "resnet18", "encoder_kwargs": {"colour": 1}}, "'resnet18' does not take these options"),
])
def test_bad_encoder_options_are_one_line(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_from_spec("unet", {"num_classes": 2, **kwargs})


def _segment_models(**overrides):
    cfg = build_config(None, task="segment", **overrides)
    task = get_task("segment")
    specs = task.model_specs(cfg, {"classes": ["background", "a", "b"], "in_channels": 3})
    return task, cfg, {name: build_from_spec(*spec) for name, spec in specs.items()}


def test_frozen_finetune_loads_the_file_and_a_step_changes_the_decoder_only(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    task, cfg, models = _segment_models(**{"model.kwargs": {"encoder": "resnet18"}, "model.width": 4,
                                           "model.weights": str(path), "model.finetune": "frozen",
                                           "optim.backbone_lr_mult": 0.1})
    model = models["model"]
    task.prepare_models(models, cfg)
    file = torch.load(path, weights_only=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert all(torch.equal(before[f"encoder.{k}"], v) for k, v in file.items() if not k.startswith("fc."))
    assert all(type(m) is FrozenBatchNorm2d for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    optimizer = build_optimizer(model, cfg.optim, task.lr_mult_of(cfg, "model", model))
    assert sorted({g["lr"] for g in optimizer.param_groups}) == pytest.approx([cfg.optim.lr * 0.1, cfg.optim.lr])
    model.train()
    loss = model(torch.rand(2, 3, 24, 24)).logsumexp(1).mean()
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if k.startswith("encoder."))  # BN buffers too
    for key in ("head.weight", "ups.0.conv.weight", "decoder.0.0.0.weight"):
        assert not torch.equal(after[key], before[key])


def test_a_classify_run_checkpoint_and_a_whole_segmentation_model_load(tmp_path):
    torch.manual_seed(0)
    classifier = MODELS.get("resnet18")(num_classes=10)
    path = tmp_path / "best.pt"
    save_checkpoint({"task": "classify", "config": {}, "preprocess": {}, "epoch": 1, "batch": 0,
                     "models": {"model": {"builder": "resnet18", "kwargs": {"num_classes": 10},
                                          "state": classifier.state_dict()}}}, path)
    model = MODELS.get("unet")(num_classes=2, encoder="resnet18", width=4)
    assert load_segmentation_weights(model, read_weights(path), str(path)) == "encoder"
    own = classifier.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in model.encoder.state_dict().items())
    again = MODELS.get("unet")(num_classes=2, encoder="resnet18", width=4)
    assert load_segmentation_weights(again, model.state_dict(), "seg.pt") == "model"  # a segmentation file
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in again.state_dict().items())


def test_weights_that_do_not_fit_the_encoder_are_one_line_before_the_run_directory(tv_resnet34_file, tmp_path):
    _, path = tv_resnet34_file
    out = tmp_path / "x"
    with pytest.raises(CheckpointError, match=r"into the resnet18 encoder\): weights are for another architecture "
                                              r"\(unexpected layer1\.2\."):
        zrenie.train("segment", out=str(out), **{"progress": False, "data.num_samples": 16, "data.size": 32,
                                                 "model.kwargs": {"encoder": "resnet18"}, "model.weights": str(path)})
    assert not out.exists()


def test_frozen_and_backbone_lr_mult_need_an_encoder():
    task, cfg, models = _segment_models(**{"model.finetune": "frozen", "model.width": 4})
    with pytest.raises(ConfigError, match="model.finetune=frozen .* UNet has none"):
        task.prepare_models(models, cfg)
    task, cfg, models = _segment_models(**{"optim.backbone_lr_mult": 0.1, "model.width": 4})
    with pytest.raises(ConfigError, match="optim.backbone_lr_mult .* unet has none"):
        task.prepare_models(models, cfg)


@pytest.mark.slow
def test_train_loads_torchvision_resnet34_weights_into_a_frozen_encoder(tv_resnet34_file, tmp_path):
    net, path = tv_resnet34_file
    run = zrenie.train("segment", out=str(tmp_path / "run"), **{
        "epochs": 1, "progress": False, "tensorboard": False, "report": False, "seed": 0, "data.num_samples": 16,
        "data.size": 32, "data.batch_size": 8, "model.kwargs": {"encoder": "resnet34"}, "model.width": 4,
        "model.weights": str(path), "model.finetune": "frozen"})
    model = load_run(run["run_dir"]).model
    assert isinstance(model, EncoderUNet)
    reference = net.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.encoder.state_dict().items())
    assert {"miou", "dice", "pixel_acc"} <= set(run["test"])
