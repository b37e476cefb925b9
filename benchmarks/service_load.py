"""Load on ``hfpipe serve``: 20 clients send 10 hypotests each at once (distinct μ on the
bundled example's sig_400_100, so the stored-result shortcut answers none), then wait
for their results. Prints throughput and p50/p95 latency (submit to result) and checks
every answer against ``hfpipe cls --poi-value μ`` run afterwards.

Usage: ``python benchmarks/service_load.py [--workers 1] [--clients 20] [--requests 10]``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from click.testing import CliRunner

from hfpipe.cli import main as hfpipe_main
from hfpipe.client import Client

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "example"
WS, PATCHSET, POINT = EXAMPLE / "BkgOnly.json", EXAMPLE / "patchset.json", "sig_400_100"


def start_server(folder: Path, tokens: list[str], workers: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (folder / "tokens").write_text("\n".join(tokens) + "\n")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hfpipe",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--state-dir",
            str(folder / "state"),
            "--token-file",
            str(folder / "tokens"),
        ],
        stdout=open(folder / "server.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            requests.get(f"{url}/v1/health", headers={"Authorization": f"Bearer {tokens[0]}"})
            return process, url
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError((folder / "server.log").read_text())


def point_patch() -> list:
    document = json.loads(PATCHSET.read_text())
    return next(p["patch"] for p in document["patches"] if p["metadata"]["name"] == POINT)


def run_client(url: str, token: str, mus: list[float], out: dict, latencies: list) -> None:
    client = Client(url, token)
    started = {}
    jobs = {}
    for mu in mus:
        started[mu] = time.perf_counter()
        jobs[mu] = client.submit(WS, patches=[point_patch()], settings={"poi_value": mu})
    for mu, job in jobs.items():
        out[mu] = client.wait(job, timeout=600)
        latencies.append(time.perf_counter() - started[mu])


def cls_output(mu: float) -> dict:
    args = ["cls", str(WS), "--patchset", str(PATCHSET), "--point", POINT, "--poi-value", str(mu)]
    return json.loads(CliRunner().invoke(hfpipe_main, args).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=10, help="per client")
    args = parser.parse_args()
    tokens = [secrets.token_urlsafe(24) for _ in range(args.clients)]
    n = args.clients * args.requests
    mus = [round(0.2 + 0.01 * k, 2) for k in range(n)]
    with tempfile.TemporaryDirectory() as folder:
        process, url = start_server(Path(folder), tokens, args.workers)
        try:
            warm = time.perf_counter()  # the worker's first job compiles the fits
            Client(url, tokens[0]).wait(Client(url, tokens[0]).submit(WS, patches=[point_patch()]))
            warm = time.perf_counter() - warm
            answers, latencies = {}, []
            threads = [
                threading.Thread(
                    target=run_client,
                    args=(
                        url,
                        tokens[k],
                        mus[k * args.requests : (k + 1) * args.requests],
                        answers,
                        latencies,
                    ),
                )
                for k in range(args.clients)
            ]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - start
        finally:
            process.terminate()
            process.wait(60)
    wrong = [mu for mu in mus if answers.get(mu) != cls_output(mu)]
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"{len(answers)} of {n} hypotests answered ({args.clients} clients x {args.requests},"
        f" {args.workers} worker(s), {os.cpu_count()} CPUs); first job (compiling) {warm:.1f} s"
    )
    print(f"wall {wall:.1f} s, throughput {n / wall:.1f} requests/s")
    print(
        f"latency submit -> result: p50 {quantiles[49]:.2f} s, p95 {quantiles[94]:.2f} s,"
        f" max {max(latencies):.2f} s"
    )
    print(
        f"equal to hfpipe cls: {n - len(wrong)} of {n}"
        + (f"; differ at mu {wrong}" if wrong else "")
    )
    sys.exit(1 if wrong or len(answers) != n else 0)


if __name__ == "__main__":
    main()
