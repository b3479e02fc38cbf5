"""`zrenie segment`: a short run on the built-in data through the API and the CLI, binary and multi-class."""

import json

import pytest
import torch

import zrenie
from zrenie.cli import main
from zrenie.errors import ConfigError
from zrenie.nn.checkpoint import load_run

TINY = {"epochs": 2, "progress": False, "tensorboard": False, "report": False, "seed": 0,
        "data.num_samples": 48, "data.size": 32, "data.batch_size": 8, "model.width": 4, "model.kwargs": {"depth": 2}}


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "shapes"
    return zrenie.train("segment", out=str(out), **TINY)


def test_metrics_are_the_contract_names_and_reproduce_from_the_checkpoint(shapes_run):
    test = shapes_run["test"]
    assert {"miou", "dice", "pixel_acc", "iou/background", "iou/circle"} <= set(test)
    assert all(0 <= v <= 1 for k, v in test.items() if k != "loss")
    again = zrenie.evaluate(shapes_run["run_dir"] / "best.pt", split="test")["metrics"]
    assert again["miou"] == pytest.approx(test["miou"], abs=1e-9)


def test_eval_prints_one_line_per_metric_and_writes_json(shapes_run, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["segment", "eval", str(shapes_run["run_dir"]), "--json", str(out)]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines() if line.strip())
    assert {"miou", "dice", "pixel_acc"} <= set(lines)
    assert json.loads(out.read_text())["miou"] == pytest.approx(float(lines["miou"]), abs=1e-4)


def test_predict_gives_a_mask_at_the_input_size_and_writes_mask_and_overlay(shapes_run, tmp_path):
    image = torch.rand(3, 41, 57)
    (result,) = zrenie.predict(shapes_run["run_dir"], [image])
    assert result.mask.shape == (41, 57) and result.mask.dtype == torch.int64
    assert sum(result.to_dict()["pixels"].values()) == pytest.approx(1)
    files = result.write_files(tmp_path)
    from PIL import Image

    assert [f.name for f in files] == ["tensor[0]_mask.png", "tensor[0]_overlay.png"]
    assert Image.open(files[0]).size == (57, 41)
    assert (torch.from_numpy(__import__("numpy").array(Image.open(files[0]))).long() == result.mask).all()


def test_a_binary_loss_trains_one_object_logit_on_lesions(tmp_path):
    run = zrenie.train("segment", out=str(tmp_path / "lesions"), **{**TINY, "data.name": "lesions", "loss": "bce_dice",
                                                                    "epochs": 1})
    handle = load_run(run["run_dir"])
    assert handle.preprocess["classes"] == ["background", "lesion"]
    last = [m for m in handle.model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert last.out_channels == 1
    assert {"miou", "dice", "iou/lesion"} <= set(run["test"])


def test_a_binary_loss_on_many_classes_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="bce is a binary loss .* the data has 9 classes"):
        zrenie.train("segment", out=str(tmp_path / "x"), **{**TINY, "loss": "bce"})
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("method", ["superpixels", "crf"])
def test_eval_with_postprocessing_shows_the_scores_with_and_without(shapes_run, method):
    plain = zrenie.evaluate(shapes_run["run_dir"], split="val")
    refined = zrenie.evaluate(shapes_run["run_dir"], split="val", **{"postprocess": method})
    assert refined["metrics_without_postprocess"]["miou"] == pytest.approx(plain["metrics"]["miou"])
    assert refined["notes"][0].startswith(f"postprocess {method} vs none: miou ")
    assert 0 <= refined["metrics"]["miou"] <= 1


def test_cli_predict_writes_mask_and_overlay_into_out_and_a_bad_image_is_one_line(shapes_run, tmp_path, capsys):
    from PIL import Image

    Image.fromarray((torch.rand(30, 40, 3) * 255).byte().numpy()).save(tmp_path / "skin.png")
    out = tmp_path / "pred"
    assert main(["segment", "predict", str(shapes_run["run_dir"]), str(tmp_path / "skin.png"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["skin_mask.png", "skin_overlay.png"]
    assert Image.open(out / "skin_mask.png").size == (40, 30)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    capsys.readouterr()
    assert main(["segment", "predict", str(shapes_run["run_dir"]), str(tmp_path / "broken.png"),
                 "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.png" in err[0] and not (tmp_path / "none").exists()
