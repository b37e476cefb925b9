"""Campaigns: downloads from a loopback HTTP server (cached, checksummed, resumable),
archives paired by digest, scans and contours, and a second run that does nothing."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from hfpipe import campaign as campaigns
from hfpipe.cli import main
from hfpipe.errors import InputError
from hfpipe.results import read_table

ROOT = Path(__file__).resolve().parents[1]
#: a few 3L-eRJR points on both sides of its exclusion line
POINTS_3L = ["ERJR_150p0_50p0", "ERJR_200p0_100p0", "ERJR_300p0_100p0", "ERJR_400p0_200p0"]


class _Server:
    """Serves ``files`` (URL path → bytes) on 127.0.0.1 with Range support; logs requests."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.log: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.log.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                status, start = 200, 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match:
                    status, start = 206, int(match.group(1))
                self.send_response(status)
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(len(body) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    """A .tar.gz as HEPData distributes likelihoods: files under one top folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _archive_3l(shared_data: Path) -> bytes:
    folder = shared_data / "atlas-3l-erjr"
    return _tar_gz(
        {
            "SUSY-2018-06/README.md": b"ATLAS 3L eRJR likelihoods\n",
            "SUSY-2018-06/BkgOnly.json": (folder / "BkgOnly.json").read_bytes(),
            "SUSY-2018-06/patchset.json": (folder / "patchset.json").read_bytes(),
        }
    )


def _archive_example() -> bytes:
    folder = ROOT / "examples" / "example"
    return _tar_gz(
        {
            "example/likelihoods/BkgOnly.json": (folder / "BkgOnly.json").read_bytes(),
            "example/likelihoods/patchset.json": (folder / "patchset.json").read_bytes(),
        }
    )


def _write_config(path: Path, analyses: list[dict], **extra) -> Path:
    doc = {
        "output": "results",
        "cache": "cache",
        "settings": {"batch_size": 8},
        "contour": {"formats": ["png", "csv"]},
        "analyses": analyses,
        **extra,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_campaign_two_analyses_over_http_then_nothing_to_do(server, shared_data, tmp_path):
    archive_3l = _archive_3l(shared_data)
    server.files["/record/resource/3l?view=true"] = archive_3l
    server.files["/files/example.tar.gz"] = _archive_example()
    config = _write_config(
        tmp_path / "campaign.yaml",
        [
            {
                "name": "atlas-3l-erjr",
                "source": f"{server.url}/record/resource/3l?view=true",
                "sha256": hashlib.sha256(archive_3l).hexdigest(),
                "points": POINTS_3L,
            },
            {"name": "example", "source": f"{server.url}/files/example.tar.gz"},
        ],
    )
    runner = CliRunner()
    first = runner.invoke(main, ["campaign", str(config)])
    assert first.exit_code == 0, first.output
    assert len(server.log) == 2
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert list(summary["analysis"]) == ["atlas-3l-erjr", "example"]
    assert list(summary["status"]) == ["computed", "computed"]
    assert list(summary["points"]) == [4, 6]
    results = tmp_path / "results"
    for name, row in summary.set_index("analysis").iterrows():
        table, provenance = read_table(results / name / "scan.parquet")
        ok = table["status"] == "ok"
        assert row["excluded_obs"] == (ok & (table["cls_obs"] < 0.05)).sum()
        assert row["excluded_exp"] == (ok & (table["cls_exp"] < 0.05)).sum()
        assert row["failures"] == (~ok).sum()
        assert row["wall_seconds"] > 0
        assert provenance["settings"]["batch_size"] == 8
        assert (results / name / "contour.png").stat().st_size > 1000
    # the 3L points straddle the line: some excluded, some not
    assert 0 < summary.loc[0, "excluded_obs"] < 4
    stamps = {
        p: p.stat().st_mtime_ns
        for p in results.rglob("*")
        if p.is_file() and p.name != "summary.csv"
    }

    second = runner.invoke(main, ["campaign", str(config)])
    assert second.exit_code == 0, second.output
    assert len(server.log) == 2  # downloaded nothing
    again = pd.read_csv(results / "summary.csv")
    assert list(again["status"]) == ["cached", "cached"]  # computed nothing
    pd.testing.assert_series_equal(again["wall_seconds"], summary["wall_seconds"])
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}  # rewrote nothing


def test_download_resumes_and_checks_sha256(server, tmp_path):
    body = bytes(range(256)) * 4000
    server.files["/big.bin"] = body
    url = f"{server.url}/big.bin"
    cache = tmp_path / "cache"
    # an earlier, interrupted download left the first part
    key = hashlib.sha256(url.encode()).hexdigest()[:32]
    (cache / "downloads").mkdir(parents=True)
    (cache / "downloads" / f"{key}.part").write_bytes(body[:300_000])
    path = campaigns.fetch(url, cache, sha256=hashlib.sha256(body).hexdigest())
    assert path.read_bytes() == body
    assert server.log == [("/big.bin", "bytes=300000-")]
    assert campaigns.fetch(url, cache) == path and len(server.log) == 1  # cached
    with pytest.raises(InputError, match="expects"):
        campaigns.fetch(url, cache, sha256="0" * 64)
    server.files["/other.bin"] = b"abc"
    with pytest.raises(InputError, match="expected"):
        campaigns.fetch(f"{server.url}/other.bin", cache, sha256="0" * 64)
    assert not list((cache / "downloads").glob("*.part"))  # the bad download is gone


def test_archive_pairs_by_digest_and_reports_mismatch(tmp_path):
    folder = ROOT / "examples" / "example"
    workspace = json.loads((folder / "BkgOnly.json").read_text())
    patchset = (folder / "patchset.json").read_bytes()
    good = tmp_path / "good.tar.gz"
    good.write_bytes(
        _tar_gz(
            {"a/BkgOnly.json": (folder / "BkgOnly.json").read_bytes(), "a/patchset.json": patchset}
        )
    )
    (pair,) = campaigns.find_pairs(campaigns.unpack(good, tmp_path / "cache"))
    assert pair.workspace.name == "BkgOnly.json" and pair.label == "a/patchset"
    # a whole HEPData submission: the likelihood archive is one of its resources
    submission = tmp_path / "submission.zip"
    with zipfile.ZipFile(submission, "w") as archive:
        archive.writestr("submission.yaml", "---\n")
        archive.writestr("resources/likelihoods.tar.gz", good.read_bytes())
    (pair,) = campaigns.find_pairs(campaigns.unpack(submission, tmp_path / "cache"))
    assert pair.label == "resources/likelihoods.tar.gz.d/a/patchset"
    workspace["observations"][0]["data"][0] += 1  # not the workspace the patchset was made for
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(
        _tar_gz({"BkgOnly.json": json.dumps(workspace).encode(), "patchset.json": patchset})
    )
    with pytest.raises(InputError, match=r"patchset.json: metadata.digests.sha256: no workspace"):
        campaigns.find_pairs(campaigns.unpack(bad, tmp_path / "cache"))


def test_failed_analysis_and_snakemake_config(server, tmp_path):
    server.files["/files/example.tar.gz"] = _archive_example()
    config = _write_config(
        tmp_path / "campaign.yaml",
        [
            {"name": "missing", "source": f"{server.url}/files/nothing.tar.gz"},
            {"name": "example", "source": f"{server.url}/files/example.tar.gz"},
        ],
    )
    out = tmp_path / "config.yaml"
    result = CliRunner().invoke(main, ["campaign", str(config), "--snakemake-config", str(out)])
    assert result.exit_code == 2 and "HTTP 404" in result.output
    assert not out.exists()
    config = _write_config(
        tmp_path / "campaign.yaml",
        [{"name": "example", "source": f"{server.url}/files/example.tar.gz"}],
        chunk_size=4,
    )
    result = CliRunner().invoke(main, ["campaign", str(config), "--snakemake-config", str(out)])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load(out.read_text())
    assert written["chunk_size"] == 4 and written["settings"]["calctype"] == "asymptotics"
    (entry,) = written["analyses"]
    assert entry["name"] == "example" and entry["points"] == "all"
    assert Path(entry["workspace"]).name == "BkgOnly.json" and Path(entry["patchset"]).is_file()
    assert not (tmp_path / "results").exists()  # nothing computed


def test_bad_campaign_file_is_one_line(tmp_path):
    config = tmp_path / "campaign.yaml"
    config.write_text(yaml.safe_dump({"analyses": [{"name": "x", "source": "a", "points": 3}]}))
    result = CliRunner().invoke(main, ["campaign", str(config)])
    assert result.exit_code == 2
    assert result.output.startswith(f"hfpipe: error: {config}: analyses[0].points:")


def test_failed_analyses_are_summarised_and_exit_1(server, tmp_path):
    folder = ROOT / "examples" / "example"
    workspace = json.loads((folder / "BkgOnly.json").read_text())
    workspace["observations"][0]["data"][0] += 1  # the patchset's digest no longer matches
    altered = tmp_path / "altered.tar.gz"
    altered.write_bytes(
        _tar_gz(
            {
                "BkgOnly.json": json.dumps(workspace).encode(),
                "patchset.json": (folder / "patchset.json").read_bytes(),
            }
        )
    )
    config = _write_config(
        tmp_path / "campaign.yaml",
        [
            {"name": "gone", "source": f"{server.url}/files/nothing.tar.gz"},
            {"name": "altered", "source": str(altered)},
        ],
    )
    result = CliRunner().invoke(main, ["campaign", str(config)])
    assert result.exit_code == 1
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert list(summary["status"]) == ["failed", "failed"]
    assert "HTTP 404" in summary.loc[0, "message"]
    assert "metadata.digests.sha256: no workspace" in summary.loc[1, "message"]
