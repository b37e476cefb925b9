"""The campaign file: which analyses to fetch and scan, with which settings.

```yaml
output: results                # tables, contours and the summary (default: results)
cache: .hfpipe-cache           # downloads and unpacked archives (default: <output>/.cache)
settings:                      # hfpipe.scanning.ScanSettings fields
  test_stat: qtilde
  upper_limits: false
contour: {cl: 0.95, formats: [png, pdf]}
chunk_size: 16                 # points per job in the Snakemake config it can write
analyses:
  - name: atlas-3l-erjr
    source: https://doi.org/10.17182/hepdata.95748.v2/r2   # URL, archive or folder
    sha256: 0f1e…              # optional: checksum of the download / archive
    points: all                # or a list of patch names
  - name: my-local
    workspace: BkgOnly.json    # or an explicit pair, as in the Snakemake config
    patchset: patchset.json
```

Relative paths are taken from the campaign file's folder. The file is checked against
:data:`SCHEMA` at load; errors name the file and the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hfpipe.errors import InputError

__all__ = ["SCHEMA", "AnalysisSource", "Campaign", "load_campaign"]

_SETTING_NAMES = [
    "mu",
    "test_stat",
    "upper_limits",
    "cl",
    "normsys_code",
    "histosys_code",
    "measurement",
    "batch_size",
]

SCHEMA = {
    "type": "object",
    "required": ["analyses"],
    "additionalProperties": False,
    "properties": {
        "output": {"type": "string"},
        "cache": {"type": "string"},
        "settings": {
            "type": "object",
            "additionalProperties": False,
            "properties": {name: {} for name in _SETTING_NAMES},
        },
        "contour": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "cl": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "formats": {
                    "type": "array",
                    "items": {"enum": ["png", "pdf", "svg", "csv", "parquet"]},
                },
            },
        },
        "chunk_size": {"type": "integer", "minimum": 1},
        "analyses": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9_.+-]+$"},
                    "source": {"type": "string"},
                    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    "workspace": {"type": "string"},
                    "patchset": {"type": "string"},
                    "points": {
                        "oneOf": [
                            {"const": "all"},
                            {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        ]
                    },
                },
                "oneOf": [{"required": ["source"]}, {"required": ["workspace", "patchset"]}],
            },
        },
    },
}


@dataclass(frozen=True)
class AnalysisSource:
    """One analysis of a campaign: a source to fetch, or an explicit workspace/patchset."""

    name: str
    source: str | None = None
    sha256: str | None = None
    workspace: str | None = None
    patchset: str | None = None
    points: tuple[str, ...] | None = None  # None: all


@dataclass(frozen=True)
class Campaign:
    """A loaded campaign file (paths resolved)."""

    analyses: tuple[AnalysisSource, ...]
    output: Path
    cache: Path
    settings: dict = field(default_factory=dict)
    cl: float = 0.95
    formats: tuple[str, ...] = ("png", "pdf")
    chunk_size: int = 16
    file: str | None = None


def _resolve(base: Path, value: str | None) -> str | None:
    from hfpipe.campaign.fetch import is_url

    if value is None or is_url(value):
        return value
    return str((base / os.path.expanduser(value)).resolve())


def _check(doc, file: str) -> None:
    from jsonschema import Draft7Validator

    errors = sorted(Draft7Validator(SCHEMA).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        raise InputError(error.message, file=file, path=list(error.absolute_path))


def load_campaign(path: str | os.PathLike) -> Campaign:
    """Read and check a campaign YAML file."""
    file = os.fspath(path)
    try:
        with open(file) as f:
            doc = yaml.safe_load(f)
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", file=file, path="") from None
    except yaml.YAMLError as error:
        raise InputError(f"invalid YAML: {error}".replace("\n", " "), file=file, path="") from None
    _check(doc, file)
    base = Path(file).resolve().parent
    names = [a["name"] for a in doc["analyses"]]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(f"analysis names must be unique: {duplicated}", file=file, path="analyses")
    analyses = []
    for entry in doc["analyses"]:
        points = entry.get("points", "all")
        analyses.append(
            AnalysisSource(
                name=entry["name"],
                source=_resolve(base, entry.get("source")),
                sha256=entry.get("sha256"),
                workspace=_resolve(base, entry.get("workspace")),
                patchset=_resolve(base, entry.get("patchset")),
                points=None if points == "all" else tuple(points),
            )
        )
    output = Path(_resolve(base, doc.get("output", "results")))
    contour = doc.get("contour", {})
    defaults = Campaign(analyses=(), output=output, cache=output)
    return Campaign(
        analyses=tuple(analyses),
        output=output,
        cache=Path(_resolve(base, doc["cache"])) if "cache" in doc else output / ".cache",
        settings=dict(doc.get("settings", {})),
        cl=contour.get("cl", defaults.cl),
        formats=tuple(contour.get("formats", defaults.formats)),
        chunk_size=doc.get("chunk_size", defaults.chunk_size),
        file=file,
    )
