"""Pretrained weights, head replacement, freezing, and transfer end to end on built-in data."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import zrenie
from zrenie.errors import CheckpointError
from zrenie.nn.transfer import FrozenBatchNorm2d, load_pretrained, lr_multiplier_of, read_weights, set_trainable

from unsafe_payloads import payloads


def _net(classes=10):
    torch.manual_seed(0)
    return zrenie.build_model("resnet_cifar", num_classes=classes, depth=8)



def test_read_weights_unwraps_every_container(tmp_path):
    state = _net().state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pth")
    save_file(state, str(tmp_path / "w.safetensors"))
    for name in ("w.pth", "w.safetensors"):
        got = read_weights(tmp_path / name)
        assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)
    marker = tmp_path / "MARKER"
    for name, payload in payloads(marker):
        name += ".pth"
        torch.save({"state_dict": state, "opt": payload}, tmp_path / name)
        with pytest.raises(CheckpointError, match="refused") as refused:
            read_weights(tmp_path / name)
        assert "\n" not in str(refused.value)
        assert not marker.exists()  # the command was never run
    with pytest.raises(CheckpointError, match="not found"):
        read_weights(tmp_path / "missing.pth")


def test_head_is_replaced_for_a_new_number_of_classes():
    source, target = _net(10), _net(4)
    fresh_fc = target.fc.weight.clone()
    replaced = load_pretrained(target, source.state_dict(), "src")
    assert sorted(replaced) == ["fc.bias", "fc.weight"]
    assert torch.equal(target.fc.weight, fresh_fc)
    assert torch.equal(target.stem[0].weight, source.stem[0].weight)


def test_weights_of_another_architecture_name_the_keys():
    with pytest.raises(CheckpointError, match="another architecture.*(missing|unexpected|shape)"):
        load_pretrained(_net(), zrenie.build_model("simple_cnn").state_dict(), "simple.pth")


def test_frozen_blocks_keep_weights_and_batchnorm_statistics():
    model = _net()
    set_trainable(model, 0)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    bn = model.stem[1]
    assert isinstance(bn, FrozenBatchNorm2d)
    before = bn.running_mean.clone()
    model.train()
    model(torch.randn(4, 3, 16, 16) * 5 + 3)
    assert not bn.training and torch.equal(bn.running_mean, before)
    set_trainable(model, 99)
    assert all(p.requires_grad for p in model.parameters()) and type(bn) is nn.BatchNorm2d
    model.train()
    assert bn.training


def test_gradual_unfreezing_goes_from_the_head_down():
    model = _net()
    trainable = []
    for k in range(5):
        set_trainable(model, k)
        trainable.append(sum(p.requires_grad for p in model.parameters()))
    assert trainable == sorted(trainable) and trainable[0] == 2 and trainable[-1] == len(list(model.parameters()))


def test_discriminative_learning_rates():
    model = _net()
    mult = lr_multiplier_of(model, 0.1)
    assert mult("fc.weight") == 1.0 and mult("stem.0.weight") == 0.1


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A small CNN trained on digits 0-4: the "pretrained" model of the transfer tests."""
    out = tmp_path_factory.mktemp("pre") / "run"
    result = zrenie.train("classify", data="digits", out=str(out), epochs=3, progress=False, tensorboard=False,
                          report=False, **{"data.subset_classes": [0, 1, 2, 3, 4], "data.batch_size": 32,
                                           "model.width": 8, "optim.lr": 0.05})
    assert result["test"]["acc1"] > 0.8
    return out


def _weights(path):
    return torch.load(path, weights_only=True)["models"]["model"]["state"]


def test_frozen_transfer_trains_only_the_head(pretrained, tmp_path):
    result = zrenie.train("classify", data="digits", out=str(tmp_path / "frozen"), epochs=2, progress=False,
                          tensorboard=False, report=False, **{
                              "data.subset_classes": [5, 6, 7, 8, 9], "model.width": 8, "data.batch_size": 32,
                              "model.weights": str(pretrained / "best.pt"), "model.finetune": "frozen"})
    before = _weights(pretrained / "best.pt")
    after = _weights(tmp_path / "frozen" / "best.pt")
    body = [k for k in before if not k.startswith("fc.")]
    assert all(torch.equal(before[k], after[k]) for k in body)  # weights and BN statistics untouched
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    assert result["test"]["acc1"] > 0.3  # features learnt on digits 0-4 separate digits 5-9 (chance: 0.2)


def test_full_finetune_with_backbone_lr_mult_changes_everything(pretrained, tmp_path):
    zrenie.train("classify", data="digits", out=str(tmp_path / "full"), epochs=1, progress=False,
                 tensorboard=False, report=False, **{
                     "data.subset_classes": [5, 6, 7, 8, 9], "model.width": 8,
                     "model.weights": str(pretrained / "best.pt"), "optim.backbone_lr_mult": 0.1})
    state = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    before = _weights(pretrained / "best.pt")
    assert not torch.equal(before["stages.0.0.0.weight"], state["models"]["model"]["state"]["stages.0.0.0.weight"])
    lrs = sorted({round(g["initial_lr"], 6) for g in state["optimizers"]["model"]["param_groups"]})
    assert lrs == [0.01, 0.1]
