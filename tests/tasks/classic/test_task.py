"""`zrenie classic` end to end on small data: the run folder, the numbers against scikit-learn recomputed from
the saved model, the grid search against scikit-learn's own, the submission, and the bad input of the issue."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import zrenie
from zrenie.cli import main
from zrenie.config import build_config
from zrenie.data.builtin.churn import churn_split, churn_table


@pytest.fixture(scope="module")
def churn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("classic") / "logreg"
    assert main(["classic", "logreg", "data.num_samples=800", "C=0.5", f"out={out}"]) == 0
    return out


def test_a_logreg_run_writes_the_folder_and_its_numbers_are_sklearns(churn_run):
    for name in ("config.yaml", "results.json", "model.pkl", "submission.csv", "report.html", "roc.png",
                 "loss_curve.png", "correlation.png", "balance_missing.png", "confusion.png"):
        assert (churn_run / name).is_file(), name
    state = pickle.loads((churn_run / "model.pkl").read_bytes())
    assert state["pipeline"].named_steps["model"].C == 0.5
    frame, probs = churn_table(800, 0)
    test = churn_split(frame["target"].to_numpy(), 0)["test"]
    rows = frame.iloc[test]
    scores = state["pipeline"].predict_proba(rows.drop(columns=["id", "target"]))[:, 1]
    results = pd.read_json(churn_run / "results.json", typ="series")
    assert results["roc_auc"] == pytest.approx(roc_auc_score(rows["target"], scores))
    assert results["generating_auc"] == pytest.approx(roc_auc_score(rows["target"], probs[test]))
    submission = pd.read_csv(churn_run / "submission.csv")
    assert list(submission.columns) == ["id", "target"] and list(submission["id"]) == list(rows["id"])
    assert np.allclose(submission["target"], scores)


def test_search_picks_what_sklearns_grid_search_picks(tmp_path):
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KNeighborsClassifier

    from zrenie.tasks.classic.data import load_data

    overrides = {"data.name": "digits", "model.name": "knn", "classic.grid": {"n_neighbors": "1,4,9"}}
    run = zrenie.train("classic", out=str(tmp_path / "knn"), **overrides)
    data = load_data(build_config(task="classic", **overrides))
    reference = GridSearchCV(KNeighborsClassifier(algorithm="brute"), {"n_neighbors": [1, 4, 9]}, cv=5)
    reference.fit(data.x["train"], data.y["train"])
    assert run["best_params"] == reference.best_params_
    assert run["test"]["accuracy"] == pytest.approx(reference.score(data.x["test"], data.y["test"]))
    assert (tmp_path / "knn" / "grid.png").is_file()


def test_boost_on_a_csv_and_submit_refuses_unseen_categories(tmp_path, capsys):
    frame, _ = churn_table(300, 1)
    frame = frame.rename(columns={"target": "Churn"})
    frame.to_csv(tmp_path / "train.csv", index=False)
    out = tmp_path / "boost"
    assert main(["classic", "boost", f"data={tmp_path / 'train.csv'}", "target=Churn", "classic.params.iterations=30",
                 f"out={out}"]) == 0
    assert (out / "importance.png").is_file()
    new = frame.drop(columns=["Churn"]).head(5).copy()
    new.loc[0, "contract"] = "Three years"
    new.to_csv(tmp_path / "test.csv", index=False)
    assert main(["classic", "submit", str(out), str(tmp_path / "test.csv")]) == 2
    assert "'contract': 'Three years'" in capsys.readouterr().err
    assert not (out / "submission_test.csv").exists()
    assert main(["classic", "submit", str(out), str(tmp_path / "test.csv"), "--allow-unseen"]) == 0
    assert list(pd.read_csv(out / "submission_test.csv")["id"]) == list(new["id"])


@pytest.mark.parametrize("args, message", [
    (["boost", "data=CSV", "target=Churn"], "no target column 'Churn'"),
    (["search", "data=digits", "model=knn", "grid.foo=1,2"], "knn has no parameter 'foo'"),
    (["search", "data=digits", "model=knn"], "search needs a grid"),
    (["logreg", "classic.params.alpha=1"], "logreg has no parameter 'alpha'"),
    (["knn", "model=forest"], "classic models are"),
    (["knn", "model=knn_sklearn", "data=digits", "n_neighbors=0"], "knn_sklearn: The 'n_neighbors' parameter"),
    (["boost", "data.num_samples=200", "classic.params.depth=40"], "boost: Maximum tree depth is 16"),
    (["search", "data=digits", "model=knn", "grid.n_neighbors=1,3", "classic.scoring=foo"], "unknown score 'foo'"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n")
    args = [a.replace("CSV", str(tmp_path / "t.csv")) for a in args]
    assert main(["classic", *args, f"out={tmp_path / 'run'}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    # one error line, the last; a value only the fit itself refuses (CatBoost's depth) comes after the header
    assert message in lines[-1] and [line.startswith("error:") for line in lines].count(True) == 1
    assert len(lines) == 1 or "depth" in message
    assert not (tmp_path / "run").exists()


def test_short_keys_reach_the_classic_section():
    cfg = build_config(task="classic", **{"C": 2.0, "penalty": "l1", "grid.n_neighbors": "1,3", "target": "y"})
    assert cfg.classic.params == {"C": 2.0, "penalty": "l1"}
    assert cfg.classic.grid == {"n_neighbors": "1,3"} and cfg.classic.target == "y"


def test_embed_features_are_the_runs_penultimate_layer(tiny, tmp_path):
    """kNN on a trained network's embeddings: the features equal a manual forward of the normalised images up to
    the input of the network's last Linear layer."""
    import torch

    from zrenie.nn.checkpoint import load_run
    from zrenie.tasks.classic.data import load_data

    run = zrenie.train("classify", **tiny("net", epochs=1))
    cfg = build_config(task="classic", **{"data.name": "digits", "classic.features": "embed",
                                          "classic.embed_run": str(run["run_dir"])})
    data = load_data(cfg)
    handle = load_run(run["run_dir"])
    model, meta = handle.model.eval(), handle.preprocess
    images = zrenie.load_dataset("digits", "test").images[:5].float() / 255
    mean, std = torch.tensor(meta["mean"]).view(1, -1, 1, 1), torch.tensor(meta["std"]).view(1, -1, 1, 1)
    captured = []
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    hook = last.register_forward_pre_hook(lambda _, inputs: captured.append(inputs[0]))
    with torch.no_grad():
        model((images - mean) / std)
    hook.remove()
    assert data.x["test"].shape == (len(data.y["test"]), last.in_features)
    assert np.allclose(data.x["test"][:5], captured[0].numpy(), atol=1e-5)


def test_keys_lists_the_classic_section(capsys):
    assert main(["classic", "keys", "classic.*"]) == 0
    listed = capsys.readouterr().out
    for key in ("classic.target", "classic.grid", "classic.params", "classic.features", "classic.test_fraction"):
        assert key in listed
    from zrenie.errors import ConfigError

    with pytest.raises(ConfigError, match="classic.test_fraction"):
        build_config(task="classic", **{"classic.test_fraction": 1.0})


def test_an_image_folder_becomes_feature_vectors_at_data_size(tmp_path):
    """Files of several sizes are read as evaluation reads them (resized and centre-cropped to data.size)."""
    from PIL import Image

    from zrenie.tasks.classic.data import load_data

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            size = (10 + i, 12 + 2 * i)
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    cfg = build_config(task="classic", **{"data.name": "image_folder", "data.root": str(tmp_path), "data.size": 8,
                                          "data.workers": 0})
    data = load_data(cfg)
    assert data.classes == ["cat", "dog"] and data.x["train"].shape[1] == 3 * 8 * 8
    assert sum(len(v) for v in data.y.values()) == 20


@pytest.mark.parametrize("model", ["logreg", "knn", "boost"])
def test_submit_loads_each_fitted_model_and_refuses_a_pickle_that_runs_code(model, tmp_path, capsys):
    from unsafe_payloads import payloads

    out = tmp_path / model
    assert main(["classic", model, "data.num_samples=300", "classic.params.iterations=20" if model == "boost"
                 else "classic.cv=5", f"out={out}"]) == 0
    frame, _ = churn_table(20, 4)
    frame.drop(columns=["target"]).to_csv(tmp_path / "new.csv", index=False)
    assert main(["classic", "submit", str(out), str(tmp_path / "new.csv")]) == 0
    marker = tmp_path / "pwned"
    clean = (out / "model.pkl").read_bytes()
    for name, payload in payloads(marker):
        state = pickle.loads(clean)
        state["pipeline"] = payload
        (out / "model.pkl").write_bytes(pickle.dumps(state))
        assert main(["classic", "submit", str(out), str(tmp_path / "new.csv")]) == 2, name
        assert "refused" in capsys.readouterr().err and not marker.exists()
