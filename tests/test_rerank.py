"""The learned re-ranker: identical features at train and match time, JSON round trip, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from matcher.cli.app import app
from matcher.datasets import load_labeled
from matcher.engine import Matcher
from matcher.learning.reranker import collect, fit_reranker
from matcher.problems import InputError
from matcher.rerank import FEATURE_GROUPS, FEATURE_NAMES, PRIOR_COL, SCORE_COL, LinearReranker
from tests.conftest import FIXTURE_REQUESTS, fast_config

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fixture_catalog):
    tmp = tmp_path_factory.mktemp("rerank")
    matcher = Matcher.from_config(fast_config(tmp))
    golds = load_labeled(FIXTURE_REQUESTS, fixture_catalog)
    data = collect(matcher, golds)
    model, report = fit_reranker(data, folds=3, seed=13)
    path = tmp / "reranker.json"
    model.save(path)
    return tmp, matcher, golds, data, model, report, path


def test_serving_scores_are_the_model_on_the_collected_features(trained):
    tmp, _, golds, data, model, _, path = trained
    serving = Matcher.from_config(fast_config(tmp, reranker=str(path), joint=False))
    results = serving.match_batch([g.request for g in golds])
    ids = serving.catalog.institute_ids
    prior = model.prior_vector(ids)
    for row, result in zip(data.features, results, strict=True):
        expected = row.copy()
        expected[:, PRIOR_COL] = prior
        scores = model.score(expected)
        order = [i for i in np.lexsort((np.arange(len(scores)), -scores)) if scores[i] > 0]
        want = [(ids[i], float(scores[i])) for i in order[: serving.config.top]]
        assert [(r.institutes[0], r.score) for r in result.recommendations] == want
        assert result.confidence == float(scores.max())
    # one at a time gives the same ranking as in a batch
    single = serving.match(golds[0].request)
    assert single.recommendations == results[0].recommendations


def test_collected_shapes_and_labels(trained):
    _, matcher, golds, data, *_ = trained
    n_inst = len(matcher.catalog.institutes)
    assert data.features.shape == (len(golds), n_inst, len(FEATURE_NAMES))
    assert data.labels.sum(axis=1).tolist() == [len(g.gold) for g in golds]
    assert np.all(data.features[..., PRIOR_COL] == 0)


def test_json_round_trip_gives_same_scores(trained):
    _, _, _, data, model, _, path = trained
    loaded = LinearReranker.load(path)
    flat = data.features.reshape(-1, len(FEATURE_NAMES))
    np.testing.assert_array_equal(loaded.score(flat), model.score(flat))
    assert loaded.to_dict() == json.loads(json.dumps(model.to_dict()))
    assert "pickle" not in path.read_text()


def test_scores_are_probabilities_and_zero_without_evidence(trained):
    *_, model, _, _ = trained
    rows = np.zeros((3, len(FEATURE_NAMES)))
    rows[:2, SCORE_COL] = [0.5, 0.1]
    scores = model.score(rows)
    assert 0 < scores[0] < 1 and 0 < scores[1] < 1 and scores[2] == 0


def test_report_picks_the_best_c_and_the_prior_counts_gold(trained):
    _, matcher, golds, data, model, report, _ = trained
    cv = {float(c): v for c, v in report["cv_by_C"].items()}
    assert report["C"] == min(
        c for c, v in cv.items() if v == max(cv.values())
    )  # best CV MRR, then smaller C
    assert round(report["cv_mrr"], 4) == cv[report["C"]]
    # base MRR: the engine's own order (score column), first gold institute's reciprocal rank
    ids = matcher.catalog.institute_ids
    rr = []
    for gold, rows in zip(golds, data.features, strict=True):
        if gold.gold:
            score = rows[:, SCORE_COL]
            order = [i for i in np.lexsort((np.arange(len(score)), -score)) if score[i] > 0]
            ranks = [r for r, i in enumerate(order, 1) if ids[i] in gold.gold]
            rr.append(1 / ranks[0] if ranks else 0.0)
    assert report["base_mrr"] == pytest.approx(np.mean(rr))
    # prior: add-one smoothed log frequency of each institute as gold in the training requests
    n_inst = len(ids)
    for inst in ids:
        count = sum(inst in g.gold for g in golds)
        assert model.prior[inst] == pytest.approx(np.log((count + 1) / (len(golds) + n_inst)))
    assert model.prior_default == pytest.approx(np.log(1 / (len(golds) + n_inst)))


def test_load_rejects_bad_files(tmp_path, trained):
    *_, model, _, _ = trained
    with pytest.raises(InputError):
        LinearReranker.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError):
        LinearReranker.load(tmp_path / "bad.json")
    data = model.to_dict()
    data["feature_names"] = [*data["feature_names"][:-1], "a_feature_of_another_version"]
    (tmp_path / "other.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="retrain"):
        LinearReranker.load(tmp_path / "other.json")
    data["feature_names"] = model.to_dict()["feature_names"][:-1]  # names and weights disagree
    (tmp_path / "short.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="finite numbers"):
        LinearReranker.load(tmp_path / "short.json")


def test_a_model_without_a_feature_group_reads_only_its_columns(trained):
    """A model keeps the features it was trained on: older models load, unused columns are ignored."""
    _, _, _, data, full, _, _ = trained
    model, report = fit_reranker(data, folds=3, seed=13, without=("cards",))
    assert not model.uses_cards and full.uses_cards
    assert not any(n.startswith("card_") for n in model.feature_names)
    assert report["without"] == ["cards"] and "card_role_rel" not in report["coefficients"]
    flat = data.features.reshape(-1, len(FEATURE_NAMES))
    cards = [FEATURE_NAMES.index(n) for n in FEATURE_GROUPS["cards"]]
    noisy = flat.copy()
    noisy[:, cards] = 123.0
    np.testing.assert_array_equal(model.score(noisy), model.score(flat))
    assert not np.array_equal(full.score(noisy), full.score(flat))
    loaded = LinearReranker.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_array_equal(loaded.score(flat), model.score(flat))
    with pytest.raises(ValueError, match="unknown feature group"):
        fit_reranker(data, folds=3, without=("colour",))


def test_serving_builds_the_cards_only_for_a_model_that_reads_them(trained, tmp_path):
    from matcher.ranking import CARDS_FILE

    _, _, golds, data, full, _, _ = trained
    lean, _ = fit_reranker(data, folds=3, seed=13, without=("cards",))
    for name, model, built in (("lean", lean, False), ("full", full, True)):
        path = tmp_path / f"{name}.json"
        model.save(path)
        serving = Matcher.from_config(fast_config(tmp_path / name, reranker=str(path)))
        assert serving.match(golds[0].request).recommendations
        assert (tmp_path / name / "index" / CARDS_FILE).is_file() is built


def test_cli_train_reranker_and_match_with_it(tmp_path):
    cfg = fast_config(tmp_path)
    cfg.save(tmp_path / "base.toml")
    out = tmp_path / "reranker.json"
    opts = ["--out", str(out), "--folds", "3", "--json"]
    result = runner.invoke(
        app,
        ["train", "reranker", "--train", str(FIXTURE_REQUESTS), "-C", str(tmp_path / "base.toml"), *opts],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["out"] == str(out) and "cv_mrr" in summary and "coefficients" in summary
    cfg.replace(reranker=str(out)).save(tmp_path / "ranked.toml")
    result = runner.invoke(
        app, ["match", "-C", str(tmp_path / "ranked.toml"), "--json", "SiC 파워모듈 패키징 크랙"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["recommendations"] and 0 < data["confidence"] < 1


def test_cli_missing_reranker_file_is_an_input_error(tmp_path):
    fast_config(tmp_path, reranker=str(tmp_path / "nope.json")).save(tmp_path / "c.toml")
    result = runner.invoke(app, ["match", "-C", str(tmp_path / "c.toml"), "기공 불량"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_cli_train_reranker_on_two_sets_chooses_on_the_selected_one(tmp_path):
    cfg = fast_config(tmp_path)
    cfg.save(tmp_path / "base.toml")
    lines = FIXTURE_REQUESTS.read_text(encoding="utf-8").splitlines()
    (tmp_path / "a.jsonl").write_text("\n".join(lines[:6]) + "\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text("\n".join(lines[6:]) + "\n", encoding="utf-8")
    args = ["train", "reranker", "-t", str(tmp_path / "a.jsonl"), "-t", str(tmp_path / "b.jsonl")]
    opts = ["-C", str(tmp_path / "base.toml"), "--folds", "2", "--out", str(tmp_path / "r.json"), "--json"]
    result = runner.invoke(app, [*args, "--select-on", str(tmp_path / "b.jsonl"), "--weight", "2", *opts])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["weight"] == 2.0 and summary["n_requests"] == len(lines)
    assert summary["n_selected_on"] == sum('"institutes": []' not in line for line in lines[6:])
    assert "hq_city" in summary["coefficients"] and "profile_max" in summary["coefficients"]
    assert "card_role_rel" in summary["coefficients"] and "cv_hit@3" in summary
    bad = runner.invoke(app, [*args, "--select-on", str(FIXTURE_REQUESTS), *opts])
    assert bad.exit_code == 2


def test_cli_train_reranker_with_the_query_cache_gives_the_same_model(tmp_path):
    """--query-cache stores the training queries' vectors and reuses them: same features, same fit."""
    cfg = fast_config(tmp_path)
    cfg.save(tmp_path / "base.toml")
    args = [
        "train",
        "reranker",
        "-t",
        str(FIXTURE_REQUESTS),
        "-C",
        str(tmp_path / "base.toml"),
        "--folds",
        "3",
    ]
    runs = []
    for name in ("plain", "cached", "reused"):
        flags = [] if name == "plain" else ["--query-cache"]
        result = runner.invoke(app, [*args, *flags, "--out", str(tmp_path / f"{name}.json"), "--json"])
        assert result.exit_code == 0, result.output
        runs.append(json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8")))
    assert (tmp_path / "cache" / "queries.sqlite").is_file()
    for run in runs[1:]:
        np.testing.assert_allclose(run["coef"], runs[0]["coef"])


def test_default_preset_ships_its_reranker_and_it_matches_this_version():
    from matcher.config import load_config

    cfg = load_config("hybrid")
    assert cfg.reranker and Path(cfg.reranker).is_file()
    model = LinearReranker.load(cfg.reranker)  # feature names must match this version's
    assert model.meta.get("C") and model.prior


def test_cards_preset_ships_a_model_that_reads_the_cards():
    from matcher.config import load_config

    default, cards = load_config("hybrid"), load_config("hybrid-cards")
    assert not LinearReranker.load(default.reranker).uses_cards
    model = LinearReranker.load(cards.reranker)
    assert model.uses_cards and model.meta.get("C") and model.prior
    # the same engine otherwise: only the re-ranker and the thresholds chosen for it differ
    assert cards.retrievers == default.retrievers and cards.retriever_weights == default.retriever_weights
