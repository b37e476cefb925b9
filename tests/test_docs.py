"""Every ``hfpipe`` command in the docs' bash blocks, and every python block, runs.

Blocks of a page run in order in one temporary directory (with ``examples/`` linked in),
so a python block can read the table a command before it wrote.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from hfpipe.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))
#: pages whose blocks take tens of seconds (Dask clusters, ranking and impacts, toys and
#: scans of many points): in the full suite only
SLOW_PAGES = {"campaigns.md", "cli.md", "dask.md", "postfit.md", "recipes.md"}


def _blocks(page: Path):
    return re.findall(r"```(bash|python)\n(.*?)```", page.read_text(), re.DOTALL)


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=pytest.mark.slow if p.name in SLOW_PAGES else ()) for p in PAGES],
    ids=[p.name for p in PAGES],
)
def test_docs_page_runs(page, tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    for language, block in _blocks(page):
        if language == "python":
            exec(compile(block, f"{page.name}:python", "exec"), {})
            continue
        for line in block.splitlines():
            if line.startswith("hfpipe "):
                result = CliRunner().invoke(main, shlex.split(line)[1:])
                assert result.exit_code == 0, (line, result.output)
