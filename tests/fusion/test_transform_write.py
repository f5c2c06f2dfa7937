"""A transform that cannot be written is one OutputError line (exit 5), not SimpleITK's error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medfuse.errors import OutputError
from medfuse.registration import read_transform, write_transform


def test_unwritable_transform_is_an_output_error(tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "transform.tfm"
    with pytest.raises(OutputError, match="cannot write the transform") as info:
        write_transform(np.eye(4), target)
    assert info.value.exit_code == 5 and "\n" not in str(info.value)
    assert not target.parent.exists()


def test_written_transform_reads_back(tmp_path: Path) -> None:
    m = np.eye(4)
    m[:3, 3] = [1.5, -2.0, 3.25]
    path = write_transform(m, tmp_path / "t.tfm")
    np.testing.assert_allclose(read_transform(path).matrix, m, atol=1e-9)
