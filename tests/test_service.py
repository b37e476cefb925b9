"""``hfpipe serve``: a real uvicorn server in a subprocess, talked to over HTTP.

The server runs as users run it (``python -m hfpipe serve``, a LocalCluster of one
worker, tokens from a file and the environment), and its answers are compared with
what the command line prints for the same inputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from click.testing import CliRunner

from hfpipe import spec
from hfpipe.cli import main
from hfpipe.client import Client, ServiceError

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "example"
WS, PATCHSET = EXAMPLE / "BkgOnly.json", EXAMPLE / "patchset.json"
POINT = "sig_400_100"
#: the main server's limits, small enough to reach in a test
MAX_QUEUED, MAX_BODY_MB, TIME_LIMIT = 10, 1, 25
#: tokens of the main server: 0 for most tests, 1 for the queue bound, 2.. the load clients
TOKENS = [secrets.token_urlsafe(24) for _ in range(23)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``hfpipe serve`` in a subprocess (its own session, so its Dask workers can be
    cleaned up with it)."""

    def __init__(self, state_dir: Path, *options: str, tokens=TOKENS):
        self.state_dir, self.options, self.tokens = state_dir, options, tokens
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self, timeout: float = 180.0) -> Server:
        token_file = self.state_dir.parent / f"{self.state_dir.name}-tokens"
        token_file.write_text("# test tokens\n" + "\n".join(self.tokens[1:]) + "\n")
        environment = os.environ | {"HFPIPE_SERVICE_TOKEN": self.tokens[0]}
        self.log = open(self.state_dir.parent / f"{self.state_dir.name}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hfpipe",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--state-dir",
                str(self.state_dir),
                "--token-file",
                str(token_file),
                *self.options,
            ],
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                requests.get(f"{self.url}/v1/health", headers=self.auth(), timeout=2)
                return self
            except requests.ConnectionError:
                time.sleep(0.3)
        raise AssertionError(f"server did not start: {self.output()}")

    def auth(self, k: int = 0) -> dict:
        return {"Authorization": f"Bearer {self.tokens[k]}"}

    def output(self) -> str:
        return (self.state_dir.parent / f"{self.state_dir.name}.log").read_text()[-3000:]

    def kill(self) -> None:
        """SIGKILL the server process (only it: its Dask workers die with it)."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(
        tmp_path_factory.mktemp("service") / "state",
        "--max-queued",
        str(MAX_QUEUED),
        "--max-body-mb",
        str(MAX_BODY_MB),
        "--time-limit",
        str(TIME_LIMIT),
    ).start()
    yield running
    running.stop()


def cli(*args: str) -> dict:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def point_patch(name: str = POINT) -> list:
    document = json.loads(PATCHSET.read_text())
    return next(p["patch"] for p in document["patches"] if p["metadata"]["name"] == name)


def signal_workspace() -> dict:
    """The bundled background with the signal of POINT: a complete pyhf workspace."""
    return spec.apply_patches(json.loads(WS.read_text()), [point_patch()])


def test_seed_example_two_calls(server):
    """The pyhf roadmap's example as written: post a workspace, get the result by id."""
    workspace = signal_workspace()
    answer = requests.post(f"{server.url}/v1/jobs", json=workspace, headers=server.auth())
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    result = requests.get(f"{server.url}/v1/result", json={"id": job_id}, headers=server.auth())
    assert result.status_code == 200, result.text
    with CliRunner().isolated_filesystem():
        Path("signal.json").write_text(json.dumps(workspace))
        expected = cli("cls", "signal.json")
    assert result.json() == expected


def test_hypotest_equals_cls(server):
    client = Client(server.url, TOKENS[0])
    settings = {"poi_value": 0.8, "test_stat": "q"}
    job = client.submit(WS, patches=[point_patch()], settings=settings)
    expected = cli(
        "cls",
        WS,
        "--patchset",
        PATCHSET,
        "--point",
        POINT,
        "--poi-value",
        "0.8",
        "--test-stat",
        "q",
    )
    assert client.wait(job, timeout=120) == expected
    status = client.status(job)
    assert status["state"] == "done" and status["ok"] is True and status["error"] is None
    # the same request again is answered from the stored result
    assert client.submit(WS, patches=[point_patch()], settings=settings) == job


def test_contract_body_and_submit_command(server):
    """The issue's request body, and ``hfpipe submit`` printing what ``hfpipe cls`` does."""
    body = {
        "task": "hypotest",
        "workspace": json.loads(WS.read_text()),
        "patches": [point_patch()],
        "settings": {"poi_value": 1.0, "test_stat": "qtilde"},
    }
    answer = requests.post(f"{server.url}/v1/jobs", json=body, headers=server.auth())
    assert answer.status_code == 202 and set(answer.json()) >= {"id"}
    job = requests.get(
        f"{server.url}/v1/jobs/{answer.json()['id']}", params={"wait": 60}, headers=server.auth()
    ).json()
    expected = cli("cls", WS, "--patchset", PATCHSET, "--point", POINT)
    assert job["state"] == "done" and job["result"] == expected and job["error"] is None
    submitted = CliRunner(env={"HFPIPE_SERVICE_TOKEN": TOKENS[0]}).invoke(
        main, ["submit", server.url, str(WS), "--patchset", str(PATCHSET), "--point", POINT]
    )
    assert submitted.exit_code == 0, submitted.output
    assert json.loads(submitted.stdout) == expected
    refused = CliRunner(env={"HFPIPE_SERVICE_TOKEN": TOKENS[0]}).invoke(
        main, ["submit", server.url, str(WS), "--fixed-poi", "1"]
    )
    assert refused.exit_code == 2
    assert "error: HTTP 422: request: settings.fixed_poi: Extra inputs" in refused.output


def test_fit_equals_fit(server):
    client = Client(server.url, TOKENS[0])
    job = client.submit(WS, task="fit", patches=[point_patch()], settings={"fixed_poi": 0.5})
    expected = cli("fit", WS, "--patchset", PATCHSET, "--point", POINT, "--fixed-poi", "0.5")
    assert client.wait(job, timeout=120) == expected


def test_upper_limits_equal_upper_limit(server):
    client = Client(server.url, TOKENS[0])
    job = client.submit(WS, task="upper_limits", patches=[point_patch()])
    expected = cli("upper-limit", WS, "--patchset", PATCHSET, "--point", POINT)
    assert client.wait(job, timeout=120) == expected
    assert expected["converged"] and expected["mu_up_exp"] == sorted(expected["mu_up_exp"])


def test_scan_table_equals_scan(server, tmp_path):
    client = Client(server.url, TOKENS[0])
    points = ["sig_300_100", "sig_500_200", "sig_700_300"]
    job = client.submit(task="scan", background=WS, patchset=PATCHSET, points=points)
    result = client.wait(job, timeout=180)
    assert result == {"points": 3, "computed": 3, "reused": 0, "not_ok": 0}
    served = pd.read_parquet(client.table(job, tmp_path / "served.parquet"))
    CliRunner().invoke(
        main,
        [
            "scan",
            str(WS),
            str(PATCHSET),
            "-o",
            str(tmp_path / "cli.parquet"),
            "--points",
            ",".join(points),
        ],
        catch_exceptions=False,
    )
    expected = pd.read_parquet(tmp_path / "cli.parquet")
    pd.testing.assert_frame_equal(served.drop(columns="seconds"), expected.drop(columns="seconds"))
    assert client.status(job)["table"] == f"/v1/jobs/{job}/table"


def test_no_token_is_401_and_jobs_are_their_owners(server):
    url = f"{server.url}/v1/jobs"
    assert requests.post(url, json={"task": "fit"}).status_code == 401
    wrong = {"Authorization": "Bearer " + secrets.token_urlsafe(24)}
    answer = requests.post(url, json=signal_workspace(), headers=wrong)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    assert requests.get(f"{server.url}/v1/health").status_code == 401
    job = requests.post(url, json=signal_workspace(), headers=server.auth()).json()["id"]
    assert requests.get(f"{url}/{job}").status_code == 401
    assert requests.get(f"{url}/{job}", headers=server.auth(1)).status_code == 404
    assert requests.delete(f"{url}/{job}", headers=server.auth(1)).status_code == 404
    assert requests.get(f"{server.url}/openapi.json").status_code == 200  # the schema is open
    origin = {**server.auth(), "Origin": "https://elsewhere.example"}
    answer = requests.get(f"{server.url}/v1/health", headers=origin)
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize(
    ("options", "environment", "message"),
    [
        ([], {}, "no token: give --token-file or set HFPIPE_SERVICE_TOKEN"),
        (["--no-auth", "--host", "0.0.0.0"], {}, "--no-auth serves this machine only"),
        ([], {"HFPIPE_SERVICE_TOKEN": "short"}, "a token must be at least 16 characters"),
    ],
    ids=["no-token", "open-and-public", "short-token"],
)
def test_serve_refuses_to_start_unguarded(options, environment, message, tmp_path):
    runner = CliRunner(env={"HFPIPE_SERVICE_TOKEN": None, **environment})
    result = runner.invoke(main, ["serve", "--state-dir", str(tmp_path), *options])
    assert result.exit_code == 2 and message in result.output
    assert not any(tmp_path.iterdir())  # nothing was started


def test_oversized_body_is_413(server):
    body = {"task": "hypotest", "workspace": {"padding": "x" * (MAX_BODY_MB * 2**20 + 1)}}
    answer = requests.post(f"{server.url}/v1/jobs", json=body, headers=server.auth())
    assert answer.status_code == 413
    assert answer.json() == {"error": f"request: the body is over the limit of {2**20} bytes"}


def _broken(change):
    workspace = json.loads(WS.read_text())
    change(workspace)
    return workspace


@pytest.mark.parametrize(
    ("workspace", "path", "problem"),
    [
        (
            _broken(lambda ws: ws["channels"][0]["samples"][1].update(data=["many"])),
            "workspace.channels[0].samples[1].data[0]",
            "expected a number, got 'many'",
        ),
        (
            _broken(lambda ws: ws["observations"][1].update(data=[1, 2])),
            "workspace.observations[1].data",
            "2 observed bins but channel 'SR' has 3",
        ),
        (
            _broken(lambda ws: ws["channels"][1]["samples"][0]["modifiers"][0].update(type="x")),
            "workspace.channels[1].samples[0].modifiers[0].type",
            "unknown modifier type 'x'",
        ),
    ],
    ids=["string-count", "observation-bins", "modifier-type"],
)
def test_malformed_workspace_is_422_naming_the_path(server, workspace, path, problem):
    body = {"task": "hypotest", "workspace": workspace, "patches": [point_patch()]}
    answer = requests.post(f"{server.url}/v1/jobs", json=body, headers=server.auth())
    assert answer.status_code == 422
    error = answer.json()
    assert error["path"] == path
    assert error["error"].startswith(f"request: {path}: {problem}") and "\n" not in error["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"task": "fit", "workspace": {}, "settings": {"poi_value": 1}},
            "request: settings.poi_value: Extra inputs are not permitted",
        ),
        ({"task": "scan", "background": {}}, "request: patchset: Field required"),
        (
            {"workspace": json.loads(WS.read_text()), "patches": [[{"op": "ad", "path": "/x"}]]},
            "request: patches[0][0].op: unknown patch operation 'ad'",
        ),
    ],
)
def test_malformed_request_is_422(server, body, message):
    answer = requests.post(f"{server.url}/v1/jobs", json=body, headers=server.auth())
    assert answer.status_code == 422 and answer.json()["error"].startswith(message)


@pytest.mark.slow  # tens of seconds: runs by default and in CI
def test_load_200_hypotests_from_20_clients(server):
    """20 clients send 10 hypotests each at once (distinct μ), then wait for all."""
    from hfpipe.commands.cls import asymptotic_cls
    from hfpipe.model import compile_model

    model = compile_model(str(WS), patches=[point_patch()])
    mus = [round(0.2 + 0.01 * k, 2) for k in range(200)]
    expected = {mu: asymptotic_cls(model, mu, "qtilde").output for mu in mus}
    answers, errors = {}, []

    def client(k: int) -> None:
        try:
            session = Client(server.url, TOKENS[2 + k])
            mine = mus[10 * k : 10 * k + 10]
            jobs = [
                session.submit(WS, patches=[point_patch()], settings={"poi_value": mu})
                for mu in mine
            ]
            answers.update(
                {mu: session.wait(job, timeout=300) for mu, job in zip(mine, jobs, strict=True)}
            )
        except Exception as error:  # collected: a thread's failure must fail the test
            errors.append(error)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert answers == expected


def _finish(client: Client, job: str, timeout: float = 180) -> dict:
    client.wait(job, timeout=timeout)
    return client.status(job)


def _jobs_on_disk(state: Path) -> dict[str, tuple[str, int]]:
    """Every job's state and attempts, as the store holds them."""
    with contextlib.closing(sqlite3.connect(state / "jobs.sqlite")) as db:
        return {i: (s, a) for i, s, a in db.execute("SELECT id, state, attempts FROM jobs")}


@pytest.mark.slow  # tens of seconds: runs by default and in CI
def test_sigkill_during_a_scan_loses_nothing(tmp_path):
    """SIGKILL the server while a scan runs, restart it on the same state directory: the
    scan resumes from its parts (every point computed once), every unfinished job is
    started once more, and the job finished before the kill is still answered."""
    state = tmp_path / "state"
    server = Server(state).start()
    try:
        client = Client(server.url, TOKENS[0])
        finished = client.submit(signal_workspace())
        before = _finish(client, finished)
        scan = client.submit(
            task="scan", background=WS, patchset=PATCHSET, settings={"upper_limits": True}
        )
        behind = [
            client.submit(WS, task="fit", patches=[point_patch()]),
            client.submit(WS, task="upper_limits", patches=[point_patch()]),
        ]
        parts = state / "tables" / f"{scan}.parquet.parts"
        deadline = time.monotonic() + 180
        while not list(parts.glob("part-*.parquet")):
            status = client.status(scan)  # a scan that ended writes no more parts
            assert status["state"] in ("queued", "running"), (status, server.output())
            assert time.monotonic() < deadline, (status, server.output())
            time.sleep(0.05)
        server.kill()
    finally:
        server.stop()
    at_kill = _jobs_on_disk(state)
    assert at_kill[scan] == ("running", 1) and at_kill[finished] == ("done", 1)
    done_before = sum(len(pd.read_parquet(p)) for p in parts.glob("part-*.parquet"))
    assert 1 <= done_before < 6

    again = Server(state).start()
    try:
        client = Client(again.url, TOKENS[0])
        resumed = _finish(client, scan)
        assert resumed["result"] == {
            "points": 6,
            "computed": 6 - done_before,
            "reused": done_before,
            "not_ok": 0,
        }
        table = pd.read_parquet(client.table(scan, tmp_path / "scan.parquet"))
        assert sorted(table["point"]) == sorted(spec.load_patchset(PATCHSET).names)
        assert table["mu_up_obs"].notna().all()
        for job in behind:
            assert _finish(client, job)["state"] == "done"
        assert client.status(finished) == before
    finally:
        again.stop()
    for job, (state_at_kill, attempts) in at_kill.items():
        rerun = state_at_kill in ("queued", "running")
        assert _jobs_on_disk(state)[job] == ("done", attempts + rerun)


@pytest.mark.slow
def test_3l_erjr_point_equals_cls_and_fit(shared_data, tmp_path):
    """On a server of its own: compiling 3L-eRJR's fits takes longer than TIME_LIMIT."""
    folder = shared_data / "atlas-3l-erjr"
    patchset = spec.load_patchset(folder / "patchset.json")
    point = "ERJR_300p0_100p0"
    server = Server(tmp_path / "state").start()
    try:
        client = Client(server.url, TOKENS[0])
        operations = list(patchset[point].operations)
        hypotest = client.submit(folder / "BkgOnly.json", patches=[operations])
        fit = client.submit(folder / "BkgOnly.json", task="fit", patches=[operations])
        inputs = [folder / "BkgOnly.json", "--patchset", folder / "patchset.json", "--point", point]
        assert client.wait(hypotest, timeout=600) == cli("cls", *inputs)
        assert client.wait(fit, timeout=600) == cli("fit", *inputs)
        assert client.status(fit)["warnings"]  # the background's mu_BG setting, as the CLI warns
    finally:
        server.stop()


def test_queue_bound_is_429_and_time_limit_fails_a_job(server):
    """A slow toy job holds the one worker; the token's next jobs (μ no other test asks
    for) queue behind it up to the bound. Cancelled ones end at once; the slow one is
    failed at the time limit. The last test on ``server``: its worker stays busy."""
    client = Client(server.url, TOKENS[1])
    slow = client.submit(
        WS, patches=[point_patch()], settings={"calctype": "toybased", "ntoys": 1_000_000}
    )
    queued = [
        client.submit(WS, patches=[point_patch()], settings={"poi_value": 3 + 0.1 * k})
        for k in range(1, MAX_QUEUED)
    ]
    with pytest.raises(ServiceError) as refused:
        client.submit(WS, patches=[point_patch()], settings={"poi_value": 9.5})
    assert refused.value.status == 429 and refused.value.retry_after > 0
    assert Client(server.url, TOKENS[0]).submit(signal_workspace())  # other tokens go on
    for job in queued:
        assert client.cancel(job)["state"] == "cancelled"
    with pytest.raises(ServiceError) as finished:
        client.cancel(queued[0])
    assert finished.value.status == 409
    job = client.status(slow, wait=TIME_LIMIT + 30)
    assert job["state"] == "failed" and job["error"] == f"time limit of {TIME_LIMIT:g} s exceeded"
