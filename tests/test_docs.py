"""Every ``hfpipe`` command in the docs' bash blocks runs and exits 0."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from hfpipe.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _commands():
    for page in sorted((ROOT / "docs").glob("*.md")):
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.DOTALL):
            for line in block.splitlines():
                if line.startswith("hfpipe "):
                    yield pytest.param(line, id=f"{page.name}:{line[:60]}")


@pytest.mark.parametrize("command", list(_commands()))
def test_docs_command_runs(command, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, shlex.split(command)[1:])
    assert result.exit_code == 0, result.output
