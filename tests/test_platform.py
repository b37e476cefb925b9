"""hfpipe._platform: the device JAX computes on, known without importing JAX where only
the CPU is possible (a scan's main process then leaves JAX to its workers)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from hfpipe._platform import only_cpu_possible

_SETTINGS = ("JAX_PLATFORMS", "JAX_PLATFORM_NAME", "PJRT_NAMES_AND_LIBRARY_PATHS")


@pytest.fixture
def unset(monkeypatch):
    for name in _SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_an_installed_jax_plugin_makes_an_accelerator_possible(tmp_path, unset):
    plugin = tmp_path / "jax_plugins" / "an_accelerator"  # jax_plugins: a namespace package
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text("")
    unset.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert not only_cpu_possible()
    unset.setenv("JAX_PLATFORMS", "cpu")  # the user's choice comes first
    assert only_cpu_possible()


@pytest.mark.parametrize(
    ("variable", "value", "cpu_only"),
    [
        ("JAX_PLATFORMS", "cpu", True),
        ("JAX_PLATFORMS", " cpu ,cpu", True),
        ("JAX_PLATFORMS", "cuda,cpu", False),
        ("JAX_PLATFORMS", "tpu", False),
        ("JAX_PLATFORM_NAME", "gpu", False),
        ("PJRT_NAMES_AND_LIBRARY_PATHS", "my_plugin:/opt/libmy.so", False),
    ],
)
def test_platform_settings(unset, variable, value, cpu_only):
    unset.setenv(variable, value)
    assert only_cpu_possible() is cpu_only


_ANSWERS = """
import json, sys
from hfpipe._platform import backend, device_kind, only_cpu_possible
answers = {"backend": backend(), "kind": device_kind(), "cpu_only": only_cpu_possible(),
           "jax_loaded": "jax" in sys.modules}
import jax
answers |= {"jax_backend": jax.default_backend(), "jax_kind": jax.devices()[0].device_kind}
print(json.dumps(answers))
"""


def test_the_answers_are_jaxs_and_need_no_jax_where_only_the_cpu_is_possible():
    done = subprocess.run([sys.executable, "-c", _ANSWERS], capture_output=True, text=True)
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers["backend"] == answers["jax_backend"]
    assert answers["kind"] == answers["jax_kind"]
    assert answers["jax_loaded"] is not answers["cpu_only"]
