"""Running the repository's Snakemake workflow from a test: the local profile in a run
folder of the test's own, with this checkout's hfpipe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_snakemake(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    """``snakemake`` with the local profile and ``folder/config.yaml``, run in ``folder``;
    jobs import this checkout's hfpipe, whatever is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "workflow" / "Snakefile"),
    ]
    command += ["--directory", str(folder), "--configfile", str(folder / "config.yaml")]
    command += ["--profile", str(ROOT / "profiles" / "local"), *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)


def example_run_folder(tmp_path: Path) -> Path:
    """A run folder with the bundled config and examples/ linked in."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config.yaml")
    return tmp_path
