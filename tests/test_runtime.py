"""e5 runtime choice: the pure decision on measured timings, runtime.json handling, and real ONNX vectors."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from matcher.encoders import runtime as rt
from matcher.encoders.runtime import Measurement, RuntimeChoice, choose
from tests.conftest import ROOT

AVX2 = frozenset({"avx2", "fma"})
SAPPHIRE = frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"})


# ---------------------------------------------------------------- the decision, fed measured timings
def test_avx2_timings_pick_onnx_over_torch():
    # `matcher model doctor` on the 2-core AMD EPYC (AVX2 only), 2026-12-03; bf16 is not even run there.
    measured = [
        Measurement("torch-fp32", 11.8, 25.4, 1.0),
        Measurement("torch-bf16", skipped="no native bf16 on this CPU"),
        Measurement("onnx-fp32", 21.4, 6.1, 1.0),
        Measurement("onnx-int8", 27.5, 3.2, 0.9929),
    ]
    assert choose(measured) == "onnx-int8"


def test_int8_below_the_cosine_gate_is_dropped():
    # Per-tensor int8 scales measured 0.977 against float32 on Korean texts: faster, but not kept.
    measured = [
        Measurement("torch-fp32", 11.8, 25.4, 1.0),
        Measurement("onnx-fp32", 21.4, 6.1, 1.0),
        Measurement("onnx-int8", 35.0, 1.0, 0.977),
    ]
    assert choose(measured) == "onnx-fp32"


def test_native_bf16_timings_pick_bf16_when_faster():
    # measured-facts.md, a CPU with native bf16: float32 34 texts/s, bf16 autocast 89 texts/s.
    measured = [
        Measurement("torch-fp32", 34.0, 7.0, 1.0),
        Measurement("torch-bf16", 89.0, 7.0, 0.9999),
        Measurement("onnx-fp32", 40.0, 2.0, 1.0),
        Measurement("onnx-int8", 60.0, 1.0, 0.994),
    ]
    assert choose(measured) == "torch-bf16"


def test_equally_fast_candidates_go_to_the_quicker_load():
    measured = [
        Measurement("torch-fp32", 30.0, 7.0, 1.0),
        Measurement("onnx-fp32", 28.5, 2.0, 1.0),  # within 10%: loads without torch
    ]
    assert choose(measured) == "onnx-fp32"
    assert choose([*measured, Measurement("onnx-int8", 29.0, 1.0, 0.995)]) == "onnx-int8"


def test_nothing_measured_falls_back_to_the_reference():
    assert choose([]) == "torch-fp32"
    assert choose([Measurement("onnx-int8", skipped="no ONNX export")]) == "torch-fp32"


def test_unmeasured_default_uses_bf16_only_with_native_bf16():
    assert rt.default_runtime(AVX2) == "torch-fp32"
    assert rt.default_runtime(SAPPHIRE) == "torch-bf16"


# ---------------------------------------------------------------- runtime.json
def _choice(runtime: str, **changes) -> RuntimeChoice:
    return RuntimeChoice(runtime=runtime, cpu=rt.cpu_description(), **changes)


def test_missing_and_corrupt_files_fall_back(tmp_path):
    assert rt.read_choice(tmp_path) is None
    assert rt.resolve("auto", tmp_path) == rt.default_runtime()
    for broken in ("{not json", '{"runtime": "gpu-fp8"}', '{"runtime": "onnx-int8", "bogus": 1}', "[]"):
        (tmp_path / rt.RUNTIME_FILE).write_text(broken)
        assert rt.read_choice(tmp_path) is None, broken
        assert rt.resolve("auto", tmp_path) == rt.default_runtime()


def test_a_choice_from_another_cpu_or_without_its_export_is_not_used(tmp_path):
    foreign = _choice("torch-fp32")
    foreign.cpu = {**foreign.cpu, "model": "Some Other CPU"}
    rt.write_choice(tmp_path, foreign)
    assert "another CPU" in rt.usable(rt.read_choice(tmp_path), tmp_path)
    rt.write_choice(tmp_path, _choice("onnx-int8"))
    assert "ONNX export is missing" in rt.usable(rt.read_choice(tmp_path), tmp_path)
    assert rt.resolve("auto", tmp_path) == rt.default_runtime()


def test_a_config_setting_overrides_the_stored_choice(tmp_path):
    rt.write_choice(tmp_path, _choice("onnx-int8"))
    assert rt.resolve("torch-fp32", tmp_path) == "torch-fp32"


def test_batch_size_is_the_fastest_and_the_larger_among_near_ties():
    # Passages/s measured on this 2-core EPYC (onnx-int8, 2 threads): small batches stay in cache.
    assert rt.choose_batch_size({4: 37.8, 8: 34.7, 16: 31.9, 32: 28.4}) == 8
    assert rt.choose_batch_size({4: 20.0, 8: 21.0, 16: 30.0, 32: 29.5}) == 32
    assert rt.choose_batch_size({}) == 0


def test_the_measured_batch_size_serves_only_its_runtime(tmp_path):
    rt.write_choice(tmp_path, _choice("torch-fp32", batch_size=8))
    assert rt.measured_batch_size(tmp_path, "torch-fp32") == 8
    assert rt.measured_batch_size(tmp_path, "onnx-fp32") == 0
    (tmp_path / rt.RUNTIME_FILE).unlink()
    assert rt.measured_batch_size(tmp_path, "torch-fp32") == 0


def test_a_request_is_not_padded_to_its_longest_text():
    from matcher.encoders.ort import length_batches

    # A request (53 tokens) and its two needs: the needs go together, the whole text alone.
    assert length_batches([53, 27, 31], batch_size=32) == [[1, 2], [0]]
    lengths = [40, 10, 11, 12, 13, 30, 31, 100, 12]
    batches = length_batches(lengths, batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) <= 3 for b in batches)
    assert all(max(lengths[i] for i in b) <= 1.25 * min(lengths[i] for i in b) for b in batches)
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)
    assert length_batches([], batch_size=8) == []


def test_runtime_json_round_trips(tmp_path):
    choice = _choice("torch-fp32", measured=[asdict(Measurement("torch-fp32", 10.0, 1.0, 1.0))])
    rt.write_choice(tmp_path, choice)
    assert rt.read_choice(tmp_path) == choice
    assert json.loads((tmp_path / rt.RUNTIME_FILE).read_text())["cpu"]["model"] == choice.cpu["model"]


# ---------------------------------------------------------------- real model: export, vectors, stored choice
@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A model folder with an ONNX export, never written into the repo's installed model.

    The installed model's files (and its export, if made) are linked into a scratch folder, so this
    test may write runtime.json there; without an installed model the default one is converted here.
    """
    from matcher.encoders.onnx_export import export_onnx
    from matcher.encoders.registry import ensure_default_model

    root = tmp_path_factory.mktemp("rt")
    installed = ROOT / "models" / "e5-small"
    if (installed / "modules.json").is_file():
        scratch = root / "e5-small"
        scratch.mkdir()
        for item in installed.iterdir():
            if item.name != rt.RUNTIME_FILE:
                (scratch / item.name).symlink_to(item.resolve(), target_is_directory=item.is_dir())
    else:
        scratch = ensure_default_model(root)
    export_onnx(scratch)
    return scratch


@pytest.mark.slow  # exports or runs e5 in two runtimes: seconds to tens of seconds
@pytest.mark.model
def test_onnx_vectors_match_the_torch_reference(exported):
    from matcher.encoders.registry import make_encoder

    texts = list(rt.CALIBRATION_TEXTS[:6])
    reference = make_encoder(exported, "torch-fp32")
    for runtime, floor in (("onnx-fp32", 0.9999), ("onnx-int8", rt.MIN_COSINE)):
        encoder = make_encoder(exported, runtime)
        assert encoder.dim == reference.dim
        for kind in ("query", "passage"):
            got, want = encoder.encode(texts, kind=kind), reference.encode(texts, kind=kind)
            assert got.shape == want.shape and got.dtype == np.float32
            cosine = np.sum(got * want, axis=1)
            assert cosine.min() >= floor, (runtime, kind, cosine.min())
        # The same text under another prompt is another vector: prompts are applied.
        assert not np.allclose(
            encoder.encode(texts[:1], kind="query"), encoder.encode(texts[:1], kind="passage")
        )
        assert encoder.id != reference.id and encoder.id.endswith(runtime)


@pytest.mark.slow  # runs e5 int8
@pytest.mark.model
def test_an_int8_query_vector_does_not_depend_on_the_texts_encoded_with_it(exported):
    from matcher.encoders.registry import make_encoder

    encoder = make_encoder(exported, "onnx-int8")
    texts = list(rt.CALIBRATION_TEXTS[:5])
    alone = np.vstack([encoder.encode([t], kind="query") for t in texts])
    # One call for all (the batch path), and the first text beside other texts in another call.
    np.testing.assert_array_equal(encoder.encode(texts, kind="query"), alone)
    np.testing.assert_array_equal(encoder.encode([texts[0], *texts[3:]], kind="query")[0], alone[0])
    # A call larger than a request's (`SMALL_BATCH`) runs its texts side by side on the batch threads.
    many = [f"{t} ({i})" for i in range(4) for t in texts]
    side_by_side = encoder.encode(many, kind="query")
    np.testing.assert_array_equal(side_by_side[-1], encoder.encode(many[-1:], kind="query")[0])


@pytest.mark.model
def test_the_stored_choice_is_what_load_encoder_serves(exported):
    from matcher.encoders.ort import OnnxEncoder
    from matcher.encoders.registry import load_encoder

    rt.write_choice(exported, _choice("onnx-int8", model_fingerprint=""))
    try:
        enc = load_encoder("e5", e5_model=str(exported), model_dir=exported.parent)
        assert isinstance(enc, OnnxEncoder) and enc.precision == "int8"
        forced = load_encoder("e5", e5_model=str(exported), model_dir=exported.parent, runtime="onnx-fp32")
        assert isinstance(forced, OnnxEncoder) and forced.precision == "fp32" and forced.id != enc.id
    finally:
        (exported / rt.RUNTIME_FILE).unlink()


@pytest.mark.slow  # exports or runs e5 in two runtimes: seconds to tens of seconds
@pytest.mark.model
def test_calibration_measures_against_the_reference(exported):
    texts = rt.CALIBRATION_TEXTS[:5]
    measured = rt.calibrate(exported, runtimes=("torch-bf16", "onnx-int8"), texts=texts, rounds=1)
    by = {m.runtime: m for m in measured}
    assert list(by) == ["torch-fp32", "torch-bf16", "onnx-int8"]
    assert by["torch-fp32"].cosine_min == pytest.approx(1.0, abs=1e-5)
    assert by["onnx-int8"].texts_per_s > 0 and by["onnx-int8"].cosine_min >= rt.MIN_COSINE
    if not rt.native_bf16():
        assert by["torch-bf16"].skipped and by["torch-bf16"].texts_per_s == 0
    rates = rt.time_batch_sizes(exported, "onnx-int8", sizes=(4, 32), rounds=1)
    assert set(rates) == {4, 32} and min(rates.values()) > 0
    choice = rt.decide(exported, measured, rates)
    assert choice.runtime == choose(measured) and choice.cpu == rt.cpu_description()
    assert choice.batch_size == rt.choose_batch_size(rates) and choice.batch_rates == {
        "4": rates[4],
        "32": rates[32],
    }


@pytest.mark.model
def test_one_pass_span_vectors(exported):
    from matcher.encoders.registry import make_encoder

    encoder = make_encoder(exported, "onnx-fp32")
    first, second = rt.CALIBRATION_TEXTS[0], rt.CALIBRATION_TEXTS[2]
    text = f"{first} {second}"
    spans = [(0, len(first)), (len(first) + 1, len(text)), (0, len(text))]
    whole, parts = encoder.encode_spans(text, spans)
    assert np.sum(whole[0] * encoder.encode([text])[0]) > 0.9999  # the whole is what `encode` gives
    assert np.allclose(np.linalg.norm(parts, axis=1), 1.0, atol=1e-5)
    assert np.sum(parts[0] * parts[1]) < 0.99  # the two halves pool different tokens
    assert np.sum(parts[2] * whole[0]) > 0.99  # all of the text: the whole less prompt and specials


def test_doctor_without_a_model_exits_3(tmp_path):
    from typer.testing import CliRunner

    from matcher.cli.app import app

    result = CliRunner().invoke(app, ["model", "doctor", "--model", "nope", "--model-dir", str(tmp_path)])
    assert result.exit_code == 3
    assert "matcher model install" in result.output


@pytest.mark.slow  # optimises and runs e5 int8 (a few seconds)
@pytest.mark.model
def test_the_saved_optimised_graph_gives_the_exports_states_bit_for_bit(exported, tmp_path, monkeypatch):
    import onnxruntime as ort

    from matcher.encoders import ort as ort_backend
    from matcher.encoders.registry import make_encoder

    export = exported / "onnx" / "model-int8.onnx"
    graph = ort_backend.optimized_graph(export)
    assert graph != export and graph.is_file() and ort_backend.optimized_graph(export) == graph
    encoder = make_encoder(exported, "onnx-int8")
    assert Path(encoder._session(1)._model_path) == graph  # served from the saved graph
    encodings = encoder.tokenize(list(rt.CALIBRATION_TEXTS[:3]))
    plain = ort.InferenceSession(str(export), providers=["CPUExecutionProvider"])
    for encoding in encodings:
        ids = np.array([encoding.ids], dtype=np.int64)
        want = plain.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
        np.testing.assert_array_equal(encoder.token_states([encoding]), want)

    # A copy whose folder cannot take the saved graph is served from the export itself.
    copy = tmp_path / "model-int8.onnx"
    copy.symlink_to(export)

    def refuse(*_args):
        raise OSError("read-only file system")

    monkeypatch.setattr(ort_backend.os, "replace", refuse)
    assert ort_backend.optimized_graph(copy) == copy
    assert not list(tmp_path.glob("*.tmp"))
    monkeypatch.undo()
    # Written once it can be, and rewritten when the export changes (its stamp no longer matches).
    saved = ort_backend.optimized_graph(copy)
    assert saved != copy and saved.is_file()
    stamp = saved.with_suffix(".json")
    stamp.write_text('[0, 0, "older"]', encoding="utf-8")
    before = saved.stat().st_mtime_ns
    assert ort_backend.optimized_graph(copy) == saved and saved.stat().st_mtime_ns != before
