"""The loop's promises: exact resume, reproducibility, clean stops on Ctrl-C and on NaN."""

import csv

import pytest
import torch

import zrenie
from zrenie.nn.checkpoint import load_checkpoint
from zrenie.engine.trainer import NonFiniteLossError, TrainingInterrupted


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in ("time", "images_per_s")} for r in csv.DictReader(f)]


def test_same_seed_gives_identical_metrics(tiny):
    a = zrenie.train("classify", **tiny("a"))
    b = zrenie.train("classify", **tiny("b"))
    assert _rows(a["run_dir"]) == _rows(b["run_dir"])
    assert a["test"] == b["test"]
    c = zrenie.train("classify", **tiny("c", seed=1))
    assert _rows(c["run_dir"]) != _rows(a["run_dir"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted three-epoch run with EMA, the target of the resume tests."""
    out = tmp_path_factory.mktemp("reference") / "ref"
    return zrenie.train("classify", data="digits", out=str(out), epochs=3, ema=0.9, progress=False,
                        tensorboard=False, report=False, seed=0, deterministic=True,
                        **{"data.batch_size": 64, "model.width": 8, "optim.lr": 0.05})


@pytest.mark.parametrize("stop_at", [(0, 5), (1, 0)], ids=["mid-epoch", "epoch-boundary"])
def test_interrupted_run_resumes_to_the_same_metrics(tiny, reference, stop_at):
    """Ctrl-C (simulated by a callback) saves last.pt; resume= ends where an uninterrupted run ends."""

    def interrupt(info):
        if (info["epoch"], info["batch"]) == (stop_at[0], stop_at[1] or 1) and stop_at[1]:
            raise KeyboardInterrupt
        if not stop_at[1] and info["epoch"] == stop_at[0] and info["batch"] == 1:
            raise KeyboardInterrupt

    run = tiny("cut", epochs=3, ema=0.9)
    with pytest.raises(TrainingInterrupted, match="resume="):
        zrenie.train("classify", callbacks=[interrupt], **run)
    state = load_checkpoint(f"{run['out']}/last.pt")
    assert state["epoch"] == stop_at[0]
    resumed = zrenie.train("classify", resume=run["out"], progress=False)
    assert _rows(resumed["run_dir"]) == _rows(reference["run_dir"])
    assert resumed["test"] == reference["test"]


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tiny):
    overrides = tiny("nan", epochs=3)
    zrenie.train("classify", **{**overrides, "epochs": 1})
    good = load_checkpoint(f"{overrides['out']}/last.pt")

    def poison(info):
        if info["epoch"] == 1 and info["batch"] == 2:
            with torch.no_grad():
                for p in trainer_params:
                    p.fill_(float("nan"))

    # Resume the one-epoch run for two more epochs, then poison the weights mid-epoch.
    import zrenie.engine.trainer as trainer_mod

    trainer_params = []
    original = trainer_mod.Trainer.__init__

    def capture(self, models, *args, **kwargs):
        original(self, models, *args, **kwargs)
        trainer_params.extend(models["model"].parameters())

    trainer_mod.Trainer.__init__ = capture
    try:
        with pytest.raises(NonFiniteLossError, match="loss became nan at epoch 2.*last good checkpoint"):
            zrenie.train("classify", resume=overrides["out"], epochs=3, callbacks=[poison], progress=False)
    finally:
        trainer_mod.Trainer.__init__ = original
    kept = load_checkpoint(f"{overrides['out']}/last.pt")
    assert kept["epoch"] == good["epoch"] == 1
    kept, good = kept["models"]["model"]["state"], good["models"]["model"]["state"]
    assert all(torch.equal(kept[k], good[k]) for k in good)


def test_run_directory_files_and_checkpoint_contents(tiny):
    result = zrenie.train("classify", **tiny("files", tensorboard=True, report=True))
    run_dir = result["run_dir"]
    for name in ("config.yaml", "metrics.csv", "last.pt", "best.pt", "report.html", "learning_curves.png",
                 "confusion_matrix.png"):
        assert (run_dir / name).is_file(), name
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"histograms": 0}).Reload()
    tags = events.Tags()
    assert {"val/acc1", "train/loss"} <= set(tags["scalars"]) and "train/batch" in tags["images"]
    assert "weights/fc.weight" in tags["histograms"] and tags["graph"]
    # Plain data only: loads with weights_only=True.
    state = torch.load(run_dir / "best.pt", weights_only=True)
    assert state["version"] == 2 and state["task"] == "classify"
    assert state["preprocess"]["classes"] == [str(i) for i in range(10)]
    assert {"models", "optimizers", "schedulers", "scalers", "rng", "config", "epoch"} <= set(state)
    assert state["models"]["model"]["builder"] == "simple_cnn"
    assert state["models"]["model"]["kwargs"] == {"num_classes": 10, "in_channels": 1, "width": 8}
    assert result["test"]["acc1"] > 0.5


def test_evaluate_reproduces_the_test_metrics(tiny):
    result = zrenie.train("classify", **tiny("ev"))
    again = zrenie.evaluate(result["run_dir"])
    assert again["metrics"] == pytest.approx(result["test"])


def test_ctrl_c_after_a_nan_does_not_save_the_poisoned_weights(tiny):
    """The non-finite flag lives on the device and is read before any save: Ctrl-C a few steps after a
    NaN (before the next periodic read) stops with the NaN error and keeps the last good checkpoint."""
    import zrenie.engine.trainer as trainer_mod

    overrides = tiny("nan_ctrl_c", epochs=1)
    zrenie.train("classify", **overrides)
    good = load_checkpoint(f"{overrides['out']}/last.pt")["models"]["model"]["state"]
    params = []
    original = trainer_mod.Trainer.__init__

    def capture(self, models, *args, **kwargs):
        original(self, models, *args, **kwargs)
        params.extend(models["model"].parameters())

    def poison_then_interrupt(info):
        if (info["epoch"], info["batch"]) == (1, 2):
            with torch.no_grad():
                for p in params:
                    p.fill_(float("nan"))
        if (info["epoch"], info["batch"]) == (1, 4):
            raise KeyboardInterrupt

    trainer_mod.Trainer.__init__ = capture
    try:
        with pytest.raises(NonFiniteLossError, match="loss became nan at epoch 2, batch 3"):
            zrenie.train("classify", resume=overrides["out"], epochs=3, log_every=1000,
                         callbacks=[poison_then_interrupt], progress=False)
    finally:
        trainer_mod.Trainer.__init__ = original
    kept = load_checkpoint(f"{overrides['out']}/last.pt")
    assert kept["epoch"] == 1 and kept["batch"] == 0
    assert all(torch.equal(kept["models"]["model"]["state"][k], good[k]) for k in good)


def test_no_host_synchronisation_per_step(tiny, monkeypatch):
    """Reading a device value on the host (item, tolist, float, bool) happens every log_every steps and at
    the end of an epoch, not per step: an epoch of ~20 steps makes a fixed handful of reads."""
    import zrenie.engine.trainer as trainer_mod

    reads = {"train": 0}
    counting = {"on": False}
    for name in ("item", "tolist", "__float__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            if counting["on"]:
                reads["train"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    original_epoch = trainer_mod.Trainer.train_epoch

    def train_epoch(self):
        counting["on"] = True
        try:
            return original_epoch(self)
        finally:
            counting["on"] = False

    monkeypatch.setattr(trainer_mod.Trainer, "train_epoch", train_epoch)
    short = zrenie.train("classify", **tiny("sync1", epochs=1, log_every=1000, **{"data.batch_size": 128}))
    reads_short, reads["train"] = reads["train"], 0
    long = zrenie.train("classify", **tiny("sync2", epochs=1, log_every=1000, **{"data.batch_size": 16}))
    assert short["test"] and long["test"]
    assert reads["train"] == reads_short  # 8x the steps, the same number of reads


def test_accumulation_counts_the_schedule_in_optimiser_steps(tiny):
    """With optim.accumulate=2 the one-cycle schedule has half as many steps and still ends at 0, and the
    optimiser stepped once per two batches (plus the short window at the end of an epoch)."""
    run = zrenie.train("classify", **tiny("acc", **{"optim.accumulate": 2, "optim.schedule": "onecycle"}))
    rows = _rows(run["run_dir"])
    assert float(rows[-1]["lr"]) == 0.0 and float(rows[0]["lr"]) > 0.0
    state = load_checkpoint(run["run_dir"] / "last.pt")
    batches = sum(1 for _ in range(0, 1259 - 1259 % 64, 64))  # digits' training split, drop_last
    assert state["schedulers"]["model"]["last_epoch"] == 2 * -(-batches // 2)


def test_sync_bn_on_cpu_is_a_config_error(tiny, monkeypatch):
    from zrenie.errors import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun; refused before joining a process group
    with pytest.raises(ConfigError, match="sync_bn"):
        zrenie.train("classify", **tiny("sbn", sync_bn=True))


def test_precise_bn_fixes_lagging_statistics_and_keeps_resume_exact(tiny):
    """A short run at a high learning rate: the running statistics lag the weights, and recomputing them
    with the final weights (precise_bn) evaluates better. The recomputation draws its own batches and
    forks the RNG, so an interrupted precise-BN run resumes to the same metrics as an uninterrupted one."""
    common = {"epochs": 2, "optim.lr": 0.2, "data.batch_size": 16, "optim.schedule": "constant"}
    plain = zrenie.train("classify", **tiny("plain", **common))
    precise = zrenie.train("classify", **tiny("precise", precise_bn=True, precise_bn_batches=30, **common))
    assert precise["val"]["val/loss"] < plain["val"]["val/loss"]

    def interrupt(info):
        if (info["epoch"], info["batch"]) == (1, 3):
            raise KeyboardInterrupt

    cut = tiny("cut", precise_bn=True, precise_bn_batches=30, **common)
    with pytest.raises(TrainingInterrupted):
        zrenie.train("classify", callbacks=[interrupt], **cut)
    resumed = zrenie.train("classify", resume=cut["out"], progress=False)
    assert _rows(resumed["run_dir"]) == _rows(precise["run_dir"])


def test_eval_every_validates_every_n_epochs_and_the_last(tiny):
    run = zrenie.train("classify", **tiny("every", epochs=5, eval_every=2))
    rows = _rows(run["run_dir"])
    assert [bool(r.get("val/acc1")) for r in rows] == [False, True, False, True, True]


def test_channels_last_converts_conv2d_and_conv3d_weights():
    from torch import nn

    from zrenie.engine.trainer import to_channels_last

    model = to_channels_last(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv3d(4, 4, 3), nn.Linear(4, 2)))
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model[1].weight.is_contiguous(memory_format=torch.channels_last_3d)
