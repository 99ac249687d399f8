"""Which runtime and precision serve e5 on THIS machine: measured at install, stored with the model.

Why: the same code was 2.5x faster with bf16 autocast on a CPU with native bf16 and 3.5-4x slower on an
AVX2-only one (docs/speed.md). So nothing is a constant: `matcher model install` (and `matcher model
doctor`) time every candidate on a fixed set of Korean texts, drop any whose vectors fall below cosine
0.99 to the float32 reference, and store the fastest in `<model>/runtime.json` with the CPU it was
measured on. `MatcherConfig.e5_runtime` overrides it; a missing, corrupt, foreign-CPU or other-weights
file falls back to the reference (torch float32; bf16 autocast where the CPU has native bf16).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from matcher.atomic import write_text_atomic
from matcher.encoders.cpu import cpu_flags, native_bf16

RUNTIMES = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")
REFERENCE = "torch-fp32"
MIN_COSINE = 0.99
"""A candidate whose vectors fall below this cosine to the reference on any calibration text is dropped."""
TIE = 0.10
"""Candidates within this fraction of the fastest count as equally fast: the quicker to load wins."""
RUNTIME_FILE = "runtime.json"
FLAGS_OF_INTEREST = (
    "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
)  # fmt: skip

CALIBRATION_TEXTS = (
    "알루미늄 다이캐스팅 부품 표면에 기공이 생겨 도금 후 불량이 늘었습니다.",
    "사출 성형품의 휨 변형을 줄이는 금형 냉각 설계를 검토받고 싶습니다.",
    "수출용 전기차 충전기의 전자파 적합성 시험을 어디서 받을 수 있나요?",
    "식품 공장 배수의 질소 농도를 낮추는 처리 공정을 찾고 있습니다.",
    "용접부 피로 균열 원인을 분석하고 수명을 예측할 방법이 필요합니다.",
    "스마트공장 설비 데이터로 고장을 미리 알려 주는 시스템을 만들고 싶어요.",
    "고분자 필름의 산소 투과도를 측정하고 포장재 설계를 개선하려 합니다.",
    "반도체 장비 부품의 세라믹 코팅이 벗겨지는 문제를 해결하고 싶습니다.",
    "섬유 원단의 난연 성능 인증 시험과 후가공 기술 지원이 필요합니다.",
    "리튬이온 배터리 셀의 열폭주를 막는 소재와 안전성 평가가 궁금합니다.",
    "정밀 가공 부품의 치수 측정 불확도를 줄이는 교정 방법을 알고 싶습니다.",
    "바이오 의약품 원료의 미생물 오염 여부를 빠르게 검사하는 방법이 있을까요?",
    "주조 공정 시뮬레이션과 열처리 조건 최적화, 시제품 제작까지 지원받고 싶습니다. "
    "현재 불량률이 8% 수준이고, 개선 후에는 차량 진동 내구 시험과 염수 분무 시험을 거쳐 "
    "완성차 업체에 납품해야 합니다.",
    "금속 3D 프린팅 장비와 분말 소재 분석 장비를 보유하고 있으며 적층 제조 공정 개발, "
    "후처리, 기계적 물성 평가를 지원합니다.",
    "전기전자 제품의 신뢰성 시험(온습도, 진동, 낙하)과 고장 분석을 수행하는 시험 인증 기관입니다.",
    "기업 현장의 에너지 사용량을 진단하고 폐열 회수와 고효율 설비 전환 방안을 제안합니다.",
)


@dataclass
class Measurement:
    """One candidate timed on the calibration texts."""

    runtime: str
    texts_per_s: float = 0.0
    load_s: float = 0.0
    cosine_min: float = 0.0
    skipped: str = ""
    """Why the candidate was not run or not kept (empty: it ran)."""


@dataclass
class RuntimeChoice:
    """The stored decision, with what it was measured on."""

    runtime: str
    threads: int = 1
    batch_size: int = 0
    """Passages per encoder call when building an index (0: not measured; the config's or 32)."""
    batch_rates: dict = field(default_factory=dict)
    """Passages/s of the chosen runtime at each batch size tried."""
    model_fingerprint: str = ""
    cpu: dict = field(default_factory=dict)
    measured: list[dict] = field(default_factory=list)
    created: str = ""


def cpu_description(flags: frozenset[str] | None = None) -> dict:
    """The CPU a measurement ran on: model name, cores, and the flags that decide precision."""
    flags = cpu_flags() if flags is None else flags
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {
        "model": model,
        "cores": os.cpu_count() or 1,
        "flags": sorted(f for f in FLAGS_OF_INTEREST if f in flags),
        "native_bf16": native_bf16(flags),
    }


def choose(measurements: Sequence[Measurement], *, min_cosine: float = MIN_COSINE, tie: float = TIE) -> str:
    """The runtime to serve with: the fastest whose vectors stay at `min_cosine` to the reference.

    Pure: fed measured timings in tests. The reference is always eligible (it IS the reference); among
    candidates within `tie` of the fastest, the one that loads quickest wins (start-up is the other
    half of a command's wall time), then the order of `RUNTIMES`.
    """
    eligible = [
        m
        for m in measurements
        if not m.skipped and m.texts_per_s > 0 and (m.runtime == REFERENCE or m.cosine_min >= min_cosine)
    ]
    if not eligible:
        return REFERENCE
    fastest = max(m.texts_per_s for m in eligible)
    close = [m for m in eligible if m.texts_per_s >= fastest * (1 - tie)]
    return min(close, key=lambda m: (m.load_s, RUNTIMES.index(m.runtime))).runtime


def default_runtime(flags: frozenset[str] | None = None) -> str:
    """The unmeasured fallback: the reference, with bf16 autocast only where the CPU computes in bf16."""
    return "torch-bf16" if native_bf16(flags) else REFERENCE


def read_choice(model_path: str | Path) -> RuntimeChoice | None:
    """The stored choice, or None when the file is missing or unreadable (never an exception)."""
    path = Path(model_path) / RUNTIME_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        choice = RuntimeChoice(**data)
    except (OSError, ValueError, TypeError):
        return None
    return choice if choice.runtime in RUNTIMES else None


def write_choice(model_path: str | Path, choice: RuntimeChoice) -> Path:
    path = Path(model_path) / RUNTIME_FILE
    write_text_atomic(path, json.dumps(asdict(choice), ensure_ascii=False, indent=1))
    return path


def usable(choice: RuntimeChoice | None, model_path: str | Path) -> str:
    """Why a stored choice cannot serve here (empty: it can): measured elsewhere or on other weights."""
    from matcher.encoders.onnx_export import onnx_path
    from matcher.encoders.st import model_fingerprint

    if choice is None:
        return "no valid runtime.json"
    here = cpu_description()
    if choice.cpu.get("model") != here["model"] or choice.cpu.get("flags") != here["flags"]:
        return f"measured on another CPU ({choice.cpu.get('model')})"
    if choice.model_fingerprint and choice.model_fingerprint != model_fingerprint(Path(model_path)):
        return "measured on other weights"
    if choice.runtime.startswith("onnx-") and not onnx_path(model_path, choice.runtime[5:]).is_file():
        return "the ONNX export is missing"
    return ""


def measured_batch_size(model_path: str | Path, runtime: str) -> int:
    """The batch size stored for this runtime on this machine, or 0 (not measured, or for another)."""
    choice = read_choice(model_path)
    if choice is None or choice.runtime != runtime or usable(choice, model_path):
        return 0
    return choice.batch_size


def resolve(setting: str, model_path: str | Path) -> str:
    """The runtime a config's `e5_runtime` means for this model on this machine."""
    if setting != "auto":
        return setting
    choice = read_choice(model_path)
    return choice.runtime if choice is not None and not usable(choice, model_path) else default_runtime()


def _timed(
    encode: Callable[[list[str]], np.ndarray], texts: list[str], rounds: int
) -> tuple[float, np.ndarray]:
    """Best-of-`rounds` texts/s, encoding one request-sized group of texts at a time (after a warm-up)."""
    encode(texts[:4])
    best = float("inf")
    vectors = np.zeros(0)
    for _ in range(rounds):
        start = time.perf_counter()
        vectors = np.vstack([encode(texts[i : i + 5]) for i in range(0, len(texts), 5)])
        best = min(best, time.perf_counter() - start)
    return len(texts) / best, vectors


def calibrate(
    model_path: str | Path,
    *,
    runtimes: Sequence[str] = RUNTIMES,
    texts: Sequence[str] = CALIBRATION_TEXTS,
    rounds: int = 2,
    progress: Callable[[str], None] | None = None,
) -> list[Measurement]:
    """Time each candidate on `texts` (one thread, as an interactive request runs) against the reference.

    torch bf16 is skipped where the CPU has no native bf16 (it is emulated there, several times slower);
    ONNX candidates are skipped when the model has no export.
    """
    from matcher.encoders.factory import make_encoder
    from matcher.encoders.onnx_export import onnx_path

    model_path = Path(model_path)
    texts = list(texts)
    order = [REFERENCE, *(r for r in runtimes if r != REFERENCE)]
    out: list[Measurement] = []
    reference: np.ndarray | None = None
    for runtime in order:
        m = Measurement(runtime)
        if runtime == "torch-bf16" and not native_bf16():
            m.skipped = "no native bf16 on this CPU"
        elif runtime.startswith("onnx-") and not onnx_path(model_path, runtime[5:]).is_file():
            m.skipped = "no ONNX export"
        if m.skipped:
            out.append(m)
            continue
        if progress:
            progress(runtime)
        start = time.perf_counter()
        encoder = make_encoder(model_path, runtime)
        m.load_s = round(time.perf_counter() - start, 3)
        tps, vectors = _timed(lambda batch, enc=encoder: enc.encode(batch, kind="query"), texts, rounds)
        m.texts_per_s = round(tps, 2)
        if reference is None:
            reference = vectors
        m.cosine_min = round(float(np.min(np.sum(vectors * reference, axis=1))), 5)
        if runtime != REFERENCE and m.cosine_min < MIN_COSINE:
            m.skipped = f"cosine {m.cosine_min} < {MIN_COSINE}"
        out.append(m)
    return out


BATCH_SIZES = (4, 8, 16, 32)
"""Candidates for passages per call. Smaller batches keep activations in cache: on a 2-core EPYC with
int8 e5, 4-8 passages per call encoded ~35 passages/s against ~28 at 32 (docs/speed.md)."""


def choose_batch_size(timings: dict[int, float], *, tie: float = TIE) -> int:
    """The batch size to build indexes with: the fastest (passages/s), the larger among near-ties
    (fewer calls, and timings of small batches are the noisier). Pure: fed measured timings in tests."""
    if not timings:
        return 0
    fastest = max(timings.values())
    return max(size for size, rate in timings.items() if rate >= fastest * (1 - tie))


def calibration_passages(n: int = 32) -> list[str]:
    """Catalog-record-sized texts (~100 tokens) made by joining three calibration texts."""
    texts = CALIBRATION_TEXTS
    return [" ".join(texts[(i + j) % len(texts)] for j in range(3)) for i in range(n)]


def time_batch_sizes(
    model_path: str | Path, runtime: str, sizes: Sequence[int] = BATCH_SIZES, rounds: int = 2
) -> dict[int, float]:
    """Passages/s of the chosen runtime at each batch size, on the thread count an index build uses."""
    from matcher.encoders.factory import make_encoder

    encoder = make_encoder(Path(model_path), runtime)
    passages = calibration_passages()
    encoder.encode(passages[:8], kind="passage", batch_size=8)
    rates: dict[int, float] = {}
    for size in sizes:
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            encoder.encode(passages, kind="passage", batch_size=size)
            best = min(best, time.perf_counter() - start)
        rates[size] = round(len(passages) / best, 2)
    return rates


def decide(
    model_path: str | Path, measured: Sequence[Measurement], batch_rates: dict[int, float] | None = None
) -> RuntimeChoice:
    """The choice to store for a calibration's measurements, with the CPU and weights they ran on."""
    from matcher.encoders.st import model_fingerprint

    return RuntimeChoice(
        runtime=choose(measured),
        threads=1,
        batch_size=choose_batch_size(batch_rates or {}),
        batch_rates={str(k): v for k, v in (batch_rates or {}).items()},
        model_fingerprint=model_fingerprint(Path(model_path)),
        cpu=cpu_description(),
        measured=[asdict(m) for m in measured],
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
