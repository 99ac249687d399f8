"""Atomic writes: the old file or the whole new one, never half written, and no temporary left behind."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.atomic import atomic_write, atomic_write_binary


@pytest.mark.parametrize("binary", [False, True])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, binary):
    path = tmp_path / "sub" / ("x.npz" if binary else "x.txt")
    opener = atomic_write_binary if binary else atomic_write
    with opener(path) as fh:
        if binary:
            np.savez(fh, a=np.arange(3))
        else:
            fh.write("첫 판")
    before = path.read_bytes()
    with pytest.raises(RuntimeError), opener(path) as fh:
        fh.write(b"half" if binary else "half")
        raise RuntimeError("interrupted")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    if binary:
        assert np.load(path)["a"].tolist() == [0, 1, 2]
    else:
        assert path.read_text(encoding="utf-8") == "첫 판"
