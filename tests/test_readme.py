"""Every ```python block of README.md runs, with the bundled model and the mini CelebA in place of /data/celeba."""
from __future__ import annotations

import re

import pytest

from tests.conftest import REPO

BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 2 and "facevae.load()" in BLOCKS[0]
    assert len(BLOCKS[0].strip().splitlines()) <= 10  # the notebook example stays short


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, celeba_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = BLOCKS[index].replace("/data/celeba", str(celeba_root))
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written, "the block wrote nothing"
    if "notebook.png" in code:
        from PIL import Image

        assert Image.open(tmp_path / "notebook.png").size == (8 * 66 + 2, 3 * 66 + 2)
