"""Serving throughput and latency: the churn model over MLServer (V2 REST) vs the example's stdlib service.

    python benchmarks/serve_bench.py                 # ~3 min: 3000 requests per server at concurrency 4
    python benchmarks/serve_bench.py --quick         # ~1.5 min: proves the script works
    python benchmarks/serve_bench.py --requests 5000 --concurrency 8 --json out.json

Builds this checkout's plugin wheel and the example churn model (train.py, seeded), installs both
into one fresh venv (``hatch-modelpack[serve]``: MLServer beside the model), starts
``modelpack serve churn-model`` and ``example_project/service.py`` on free loopback ports, and sends
each the same one-customer request (churn probability) from a bounded load generator: a fixed number
of requests from ``--concurrency`` threads, each with its own HTTP/1.1 connection (reused when the
server keeps it open; the stdlib service closes it after each answer, as its HTTP/1.0 handler does).
Reports requests/s and p50/p99 latency after a warm-up. Servers and the working directory are removed
at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "example_project"
RECORD = {"tenure_months": 3, "monthly_charges": 95.0, "support_calls": 4, "contract": "monthly"}


def sh(*cmd: object, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    subprocess.run([str(c) for c in cmd], check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def uv() -> str:
    scripts = Path(sysconfig.get_path("scripts"))
    return str(scripts / "uv") if (scripts / "uv").exists() else (shutil.which("uv") or "uv")


def prepare(work: Path) -> Path:
    """The venv with the churn-model wheel and hatch-modelpack[serve]; returns its bin directory."""
    wheelhouse = work / "wheelhouse"
    sh(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", wheelhouse, REPO)
    project = work / "example_project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("artifacts", "dist", "__pycache__", "wheelhouse"))
    sh(sys.executable, project / "train.py")
    env = dict(os.environ, PIP_FIND_LINKS=" ".join(filter(None, [str(wheelhouse), os.environ.get("PIP_FIND_LINKS")])))
    sh(sys.executable, "-m", "build", "--wheel", "--outdir", project / "dist", project, env=env)
    venv = work / "venv"
    sh(uv(), "venv", "--quiet", "--python", sys.executable, venv)
    plugin = next(wheelhouse.glob("hatch_modelpack-*.whl"))
    model = next((project / "dist").glob("churn_model-*.whl"))
    sh(
        uv(),
        "pip",
        "install",
        "--quiet",
        "--python",
        venv / "bin" / "python",
        f"hatch-modelpack[serve] @ {plugin.as_uri()}",
        model,
    )
    return venv / "bin"


def wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout} s")


def load(port: int, path: str, body: bytes, requests: int, concurrency: int, check: Any = None) -> dict[str, float]:
    """Send `requests` POSTs from `concurrency` threads; latencies in ms. `check` sees every answer when given."""
    lock = threading.Lock()
    remaining = [requests]
    latencies: list[float] = []
    errors: list[str] = []

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        while True:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{resp.status}: {data[:200]!r}")
                if resp.getheader("Connection", "").lower() == "close" or resp.version == 10:
                    conn.close()
                    conn = None
            except Exception as exc:
                errors.append(str(exc))
                if conn is not None:
                    conn.close()
                conn = None
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
            if check is not None:
                check(json.loads(data))
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, first: {errors[0]}")
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    return {
        "requests": len(latencies),
        "concurrency": concurrency,
        "rps": len(latencies) / wall,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
    }


def measure(port: int, path: str, body: bytes, check: Any, args: argparse.Namespace) -> dict[str, float]:
    load(port, path, body, args.warmup, args.concurrency, check)  # warm-up, answers checked
    return load(port, path, body, args.requests, args.concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="300 requests each, to prove the script works")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--workdir", type=Path, help="keep the venv and model here (default: a temp dir, removed)")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.warmup = 300, 50
    work = args.workdir or Path(tempfile.mkdtemp(prefix="modelpack-serve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        bindir = prepare(work) if not (work / "venv" / "bin" / "mlserver").exists() else work / "venv" / "bin"
        mls_port, std_port = free_port(), free_port()
        log = open(work / "servers.log", "wb")  # noqa: SIM115 - closed in finally
        procs.append(
            subprocess.Popen(
                [
                    bindir / "modelpack",
                    "serve",
                    "churn-model",
                    "--port",
                    str(mls_port),
                    "--grpc-port",
                    str(free_port()),
                    "--metrics-port",
                    str(free_port()),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=work,
            )
        )
        procs.append(
            subprocess.Popen(
                [bindir / "python", EXAMPLE / "service.py", "--port", str(std_port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=work,
            )
        )
        wait(f"http://127.0.0.1:{mls_port}/v2/models/churn/ready", procs[0])
        wait(f"http://127.0.0.1:{std_port}/health", procs[1])

        v2 = {
            "parameters": {"content_type": "pd"},
            "outputs": [{"name": "predict_proba"}],
            "inputs": [
                {"name": k, "datatype": "BYTES" if isinstance(v, str) else "FP64", "shape": [1], "data": [v]}
                for k, v in RECORD.items()
            ],
        }
        want: list[float] = []

        def check_std(answer: Any) -> None:
            want.append(answer["churn_probability"][0])

        def check_v2(answer: Any) -> None:
            got = answer["outputs"][0]["data"][1]
            assert abs(got - want[0]) < 1e-12, (got, want[0])

        results = {}
        results["stdlib service.py (POST /predict)"] = measure(
            std_port, "/predict", json.dumps([RECORD]).encode(), check_std, args
        )
        results["MLServer V2 (POST /v2/models/churn/infer)"] = measure(
            mls_port, "/v2/models/churn/infer", json.dumps(v2).encode(), check_v2, args
        )
        print(
            f"\none-customer churn_probability request, {args.requests} timed requests after {args.warmup} warm-up, concurrency {args.concurrency}, loopback"
        )
        print(f"{'server':45} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        for name, r in results.items():
            print(f"{name:45} {r['rps']:8.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
