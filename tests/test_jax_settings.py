"""hfpipe's process-wide JAX settings (hfpipe/_jax.py), each checked in a fresh process:
they are made once, at import."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hfpipe

_REPORT = """
import json, jax, jax.numpy as jnp
import hfpipe
from hfpipe import _jax
jax.jit(lambda x: jnp.sin(x) @ x)(jnp.ones((3, 3))).block_until_ready()
print(json.dumps({
    "x64": jax.config.jax_enable_x64,
    "cache": jax.config.jax_compilation_cache_dir,
    "max_size": jax.config.jax_compilation_cache_max_size,
    "kind": _jax._cpu_kind(),
}))
"""


def _settings(**environment: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env.update(environment, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    done = subprocess.run(
        [sys.executable, "-c", _REPORT], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_compilation_cache_is_kept_per_kind_of_cpu(tmp_path):
    settings = _settings(HFPIPE_COMPILATION_CACHE=str(tmp_path))
    assert settings["x64"]
    folder = tmp_path / settings["kind"]
    assert settings["cache"] == str(folder)
    # the compilation above was written to it, for the next process to load
    assert any(folder.iterdir())
    # sized, so that JAX locks it for every read and write (processes share it)
    assert settings["max_size"] > 0 and (folder / ".lockfile").exists()


def test_compilation_cache_default_folder_and_off_switch(tmp_path):
    settings = _settings(XDG_CACHE_HOME=str(tmp_path), HFPIPE_COMPILATION_CACHE="")
    assert settings["cache"] == str(tmp_path / "hfpipe" / "xla" / settings["kind"])
    assert _settings(HFPIPE_COMPILATION_CACHE="off")["cache"] is None


@pytest.mark.slow
def test_a_cache_folder_set_for_jax_is_left_alone(tmp_path):
    mine = tmp_path / "mine"
    settings = _settings(
        JAX_COMPILATION_CACHE_DIR=str(mine), HFPIPE_COMPILATION_CACHE=str(tmp_path / "hfpipe")
    )
    assert settings["cache"] == str(mine)


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="reads /proc/cpuinfo")
def test_cpu_kind_names_the_architecture():
    from hfpipe import _jax

    kind = _jax._cpu_kind()
    assert kind.startswith(os.uname().machine + "-") and len(kind.split("-")[-1]) == 16


_COMPILE_TOGETHER = """
import json, pathlib, sys, time
import jax, jax.numpy as jnp
from hfpipe import _jax
from jax._src import compiler

compiles = []
compile_and_load = compiler.backend_compile_and_load
def counted(*args, **kwargs):
    compiles.append(1)
    return compile_and_load(*args, **kwargs)
compiler.backend_compile_and_load = counted

def many_steps(x):
    for k in range(300):
        x = jnp.sin(x * (1.0 + k / 300)) @ x.T
    return x.sum()

barrier, me = pathlib.Path(sys.argv[1]), sys.argv[2]
(barrier / me).touch()
while len(list(barrier.iterdir())) < 2:
    time.sleep(0.005)
x = jnp.eye(4) / 3
before = len(compiles)
value = float(jax.jit(many_steps)(x))
print(json.dumps({"compiles": len(compiles) - before, "value": value}))
"""


@pytest.mark.slow
def test_processes_that_start_together_compile_a_function_once(tmp_path):
    """Two processes miss the empty cache at the same moment: one compiles, the other
    waits for it and loads the executable it wrote (hfpipe/_jax.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env.update(HFPIPE_COMPILATION_CACHE=str(tmp_path / "cache"))
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    barrier = tmp_path / "ready"
    barrier.mkdir()
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _COMPILE_TOGETHER, str(barrier), name],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    reports = [json.loads(run.communicate()[0].strip().splitlines()[-1]) for run in runs]
    assert all(run.returncode == 0 for run in runs)
    assert sorted(r["compiles"] for r in reports) == [0, 1]
    assert reports[0]["value"] == reports[1]["value"]


def _imports(tree, module: str, name: str | None = None) -> bool:
    """Whether a module's top level imports ``module`` (or ``name`` from it)."""
    for node in tree.body:
        if isinstance(node, ast.Import) and name is None:
            found = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module if name is not None else node.module.split(".")[0]
            found = [top] if name is None or name in {a.name for a in node.names} else []
        else:
            continue
        if module in found:
            return True
    return False


def test_every_module_that_imports_jax_imports_hfpipes_settings():
    """The packages load lazily (importing hfpipe.model does not load JAX), so no module
    can count on another having made the settings (double precision above all): each
    one that imports JAX imports hfpipe._jax itself."""
    package = Path(hfpipe.__file__).parent
    missing = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if path.name != "_jax.py"
        and _imports(tree := ast.parse(path.read_text()), "jax")
        and not _imports(tree, "hfpipe", "_jax")
    ]
    assert not missing, f"import JAX without hfpipe._jax: {missing}"
