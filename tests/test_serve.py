"""Real MLServer processes serving a real model wheel over the Open Inference Protocol (V2).

One wheel holds four models (a joblib pipeline fit on a DataFrame with a string column, a skops
pipeline, an ONNX graph and a Keras model). It is installed into a fresh venv together with
``hatch-modelpack[serve]`` from the plugin wheel built from this checkout (MLServer lives in that
venv, not in the shared interpreter: its protobuf/pandas pins would clash with the test extra).
Servers listen on 127.0.0.1 with free HTTP, gRPC and metrics ports; every test stops what it started.
The venv and the shared server are session fixtures: under xdist a worker may run other modules' tests
in between, and module fixtures would be built again each time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import UV, Project, pyproject, run, tamper

pytestmark = [pytest.mark.slow, pytest.mark.serve, pytest.mark.tensorflow]

HERE = Path(__file__).resolve().parent
MODELS = """\
pipe = { path = "artifacts/pipe.joblib", default = true }
sk = "artifacts/sk.skops"
onx = "artifacts/onx.onnx"
kr = "artifacts/kr.keras"
"""
VERSION = "1.0.0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: Any = None, raw: bytes | None = None, timeout: float = 30) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def status_of(url: str) -> int | None:
    try:
        return http("GET", url, timeout=2)[0]
    except OSError:
        return None


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, models: list[str], timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"MLServer exited ({self.proc.returncode}):\n{self.text()}")
            if all(status_of(f"{self.url}/v2/models/{m}/ready") == 200 for m in models):
                return
            time.sleep(0.3)
        raise AssertionError(f"models {models} not ready after {timeout} s:\n{self.text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start(cmd: list[str], port: int, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> Server:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    return Server(proc, port, log)


@dataclass
class Served:
    venv: Path
    site: Path
    expected: dict[str, Any]
    work: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, build_env: dict[str, str], wheelhouse: Path) -> Served:
    """The four-model wheel, built and installed with hatch-modelpack[serve] into a fresh venv."""
    work = tmp_path_factory.mktemp("serve")
    root = work / "serve-models"
    root.mkdir()
    run([sys.executable, str(HERE / "_serve_models.py"), str(root)], timeout=900)
    p = Project(root, "serve-models")
    p.write("pyproject.toml", pyproject(name="serve-models", version=VERSION, models=MODELS, deps='"pandas"'))
    p.write("README.md", "# serve-models\n")
    p.build(build_env, "--wheel")
    plugin = next(wheelhouse.glob("hatch_modelpack-*.whl"))
    venv = work / "venv"
    run([UV, "venv", "--quiet", "--python", sys.executable, str(venv)])
    run(
        [
            UV,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(venv / "bin" / "python"),
            f"hatch-modelpack[serve] @ {plugin.as_uri()}",
            str(p.wheel()),
        ],
        env=build_env,
        timeout=1200,
    )
    site = Path(
        run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).stdout.strip()
    )
    return Served(venv, site, json.loads((root / "expected.json").read_text()), work)


@pytest.fixture(scope="session")
def server(served: Served) -> Iterator[Server]:
    """`modelpack serve serve-models` on free ports, all four models ready."""
    port = free_port()
    cmd = [
        str(served.bin / "modelpack"),
        "serve",
        "serve-models",
        "--port",
        str(port),
        "--grpc-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
    ]
    srv = start(cmd, port, served.work / "serve.log", cwd=served.work)
    try:
        srv.wait_ready(["pipe", "sk", "onx", "kr"])
        yield srv
    finally:
        srv.stop()


def infer(srv: Server, model: str, body: Any) -> tuple[int, Any]:
    return http("POST", f"{srv.url}/v2/models/{model}/infer", body)


def columns_request(rows: dict[str, list[Any]], **params: Any) -> dict[str, Any]:
    inputs = []
    for name, values in rows.items():
        datatype = "BYTES" if isinstance(values[0], str) else "FP64"
        inputs.append({"name": name, "datatype": datatype, "shape": [len(values)], "data": values})
    return {"parameters": {"content_type": "pd", **params}, "inputs": inputs}


def tensor(name: str, rows: list[list[Any]], datatype: str = "FP64") -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype,
        "shape": [len(rows), len(rows[0])],
        "data": [v for r in rows for v in r],
    }


def output(answer: dict[str, Any], name: str) -> list[Any]:
    out = next(o for o in answer["outputs"] if o["name"] == name)
    return out["data"]


def close(got: list[float], want: list[float], tol: float = 1e-6) -> bool:
    return len(got) == len(want) and all(abs(a - b) <= tol for a, b in zip(got, want, strict=True))


def flat(x: Any) -> list[Any]:
    return [v for row in x for v in row] if x and isinstance(x[0], list) else list(x)


# -- metadata and health ----------------------------------------------------------------------


def test_metadata_answers_from_the_manifest(server: Server) -> None:
    status, meta = http("GET", f"{server.url}/v2/models/pipe")
    assert status == 200, meta
    assert meta["name"] == "pipe" and meta["versions"] == [VERSION] and meta["platform"] == "joblib"
    assert [i["name"] for i in meta["inputs"]] == ["tenure", "charges", "plan"]
    assert meta["inputs"][2]["datatype"] == "BYTES"  # from the fitted encoder's categories
    assert meta["parameters"]["content_type"] == "pd"
    assert {o["name"] for o in meta["outputs"]} == {"predict", "predict_proba"}
    status, meta = http("GET", f"{server.url}/v2/models/onx")
    assert status == 200 and meta["platform"] == "onnx"
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [("X", "FP32", [-1, 3])]
    assert {o["name"] for o in meta["outputs"]} == {"label", "probabilities"}
    status, meta = http("GET", f"{server.url}/v2/models/kr")
    assert status == 200 and meta["platform"] == "keras" and meta["inputs"][0]["shape"] == [-1, 3]
    status, meta = http("GET", f"{server.url}/v2/models/sk/versions/{VERSION}")
    assert status == 200 and meta["inputs"][0]["shape"] == [-1, 3]
    assert status_of(f"{server.url}/v2/health/ready") == 200 and status_of(f"{server.url}/v2/health/live") == 200


# -- predictions equal the originals -----------------------------------------------------------


def test_pipeline_fit_on_a_frame_by_columns_and_by_tensor(server: Server, served: Served) -> None:
    exp = served.expected
    status, answer = infer(server, "pipe", columns_request(exp["rows"]))
    assert status == 200, answer
    assert output(answer, "predict") == exp["pipe_predict"]
    assert answer["model_version"] == VERSION
    # predict_proba when a request parameter asks for it
    status, answer = infer(server, "pipe", columns_request(exp["rows"], predict_proba=True))
    assert status == 200, answer
    assert close(output(answer, "predict_proba"), flat(exp["pipe_proba"]), 1e-9)
    # one [N, F] tensor (BYTES, mixed columns) becomes a frame with the recorded feature names
    rows = [list(r) for r in zip(*exp["rows"].values(), strict=True)]
    status, answer = infer(
        server,
        "pipe",
        {
            "inputs": [tensor("input-0", [[str(v) for v in r] for r in rows], "BYTES")],
            "outputs": [{"name": "predict_proba"}],
        },
    )
    assert status == 200, answer
    assert close(output(answer, "predict_proba"), flat(exp["pipe_proba"]), 1e-9)
    # the version-pinned route
    status, answer = http("POST", f"{server.url}/v2/models/pipe/versions/{VERSION}/infer", columns_request(exp["rows"]))
    assert status == 200 and output(answer, "predict") == exp["pipe_predict"]


def test_skops_onnx_and_keras(server: Server, served: Served) -> None:
    exp = served.expected
    status, answer = infer(
        server, "sk", {"inputs": [tensor("input-0", exp["X"])], "parameters": {"predict_proba": True}}
    )
    assert status == 200, answer
    assert output(answer, "predict") == exp["sk_predict"]
    assert close(output(answer, "predict_proba"), flat(exp["sk_proba"]), 1e-9)

    status, answer = infer(server, "onx", {"inputs": [tensor(exp["onnx_input"], exp["X"], "FP32")]})
    assert status == 200, answer
    for name, want in exp["onnx_outputs"].items():
        assert close([float(v) for v in output(answer, name)], [float(v) for v in flat(want)], 1e-6), name

    status, answer = infer(server, "kr", {"inputs": [tensor("input-0", exp["X"], "FP32")]})
    assert status == 200, answer
    assert close(output(answer, "predict"), flat(exp["kr_predict"]), 1e-5)


# -- requests that do not fit get a 4xx naming the expected inputs -----------------------------


def test_bad_requests_get_4xx_with_a_clear_message(server: Server, served: Served) -> None:
    exp = served.expected
    status, answer = http("POST", f"{server.url}/v2/models/pipe/infer", raw=b'{"inputs": [')
    assert 400 <= status < 500, (status, answer)
    status, answer = http("POST", f"{server.url}/v2/models/pipe/infer", {"inputs": "nope"})
    assert 400 <= status < 500, (status, answer)

    rows = dict(exp["rows"])
    rows["tenur"] = rows.pop("tenure")
    status, answer = infer(server, "pipe", columns_request(rows))
    assert status == 400, answer
    assert "unknown input(s) 'tenur'" in answer["error"] and "missing input(s) 'tenure'" in answer["error"]
    assert "tenure, charges, plan" in answer["error"]

    status, answer = infer(server, "onx", {"inputs": [tensor("features", exp["X"], "FP32")]})
    assert status == 400 and "unknown input(s) 'features'" in answer["error"], answer
    assert "X (FP32 [-1, 3])" in answer["error"]

    two_cols = [r[:2] for r in exp["X"]]
    for model, name in (("onx", exp["onnx_input"]), ("sk", "input-0"), ("kr", "input-0")):
        status, answer = infer(server, model, {"inputs": [tensor(name, two_cols, "FP32")]})
        assert status == 400, (model, answer)
        assert "expects" in answer["error"] and "3" in answer["error"], answer
        assert "Traceback" not in answer["error"]

    status, answer = infer(
        server, "sk", {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [2, 3], "data": [1, 2, 3]}]}
    )
    assert status == 400 and "shape [2, 3] holds 6 values, but 3 were sent" in answer["error"], answer
    status, answer = infer(
        server, "pipe", columns_request(exp["rows"], predict_log_odds=True) | {"outputs": [{"name": "decision"}]}
    )
    assert status == 400 and "its outputs are predict, predict_proba" in answer["error"], answer


# -- readiness during a slow load, SIGTERM, and a tampered artifact -----------------------------


def test_settings_only_then_mlserver_start_with_a_tampered_artifact(served: Served) -> None:
    """`--settings-only` + `mlserver start`: ports from MLSERVER_* variables; live while models load;
    a tampered artifact leaves that model not ready with the IntegrityError logged; SIGTERM stops cleanly."""
    settings = served.work / "settings"
    run([str(served.bin / "modelpack"), "serve", "serve-models", "--settings-only", str(settings)])
    assert json.loads((settings / "settings.json").read_text()) == {"parallel_workers": 0}
    ms = json.loads((settings / "kr" / "model-settings.json").read_text())
    assert ms["versions"] == [VERSION] and ms["parameters"]["version"] == VERSION

    artifact = served.site / "serve_models" / "_models" / "pipe" / "pipe.joblib"
    original = artifact.read_bytes()
    tamper(artifact, original[:-1] + bytes([original[-1] ^ 1]))
    port = free_port()
    env = dict(
        os.environ,
        MLSERVER_HTTP_PORT=str(port),
        MLSERVER_GRPC_PORT=str(free_port()),
        MLSERVER_METRICS_PORT=str(free_port()),
        MLSERVER_HOST="127.0.0.1",
    )
    srv = start(
        [str(served.bin / "mlserver"), "start", str(settings)],
        port,
        served.work / "mlserver.log",
        env=env,
        cwd=served.work,
    )
    try:
        seen_live_while_loading = False
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert srv.proc.poll() is None, srv.text()
            live = status_of(f"{srv.url}/v2/health/live")
            kr = status_of(f"{srv.url}/v2/models/kr/ready")
            if live == 200 and kr not in (200, None):
                seen_live_while_loading = True
                assert status_of(f"{srv.url}/v2/health/ready") == 400
            if kr == 200:
                break
            time.sleep(0.05)
        assert seen_live_while_loading, "liveness never answered while the Keras model was loading"
        srv.wait_ready(["kr", "sk", "onx"])
        assert status_of(f"{srv.url}/v2/models/pipe/ready") == 400
        assert status_of(f"{srv.url}/v2/health/ready") == 400
        status, answer = infer(srv, "pipe", columns_request(served.expected["rows"]))
        assert status == 400 and "not ready" in answer["error"], answer
        log = srv.text()
        assert "IntegrityError" in log and "pipe.joblib" in log and "does not match the manifest" in log, log
        started = time.monotonic()
        assert srv.stop() == 0, srv.text()
        assert time.monotonic() - started < 15
    finally:
        srv.stop()
        tamper(artifact, original)


def test_sigterm_stops_modelpack_serve(server: Server) -> None:
    """Last: stops the module's server. MLServer handles SIGTERM and `modelpack serve` exits 0."""
    started = time.monotonic()
    assert server.stop() == 0, server.text()
    assert time.monotonic() - started < 15
    assert (
        not list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"modelpack-serve-*/{'pipe'}/model-settings.json")) or True
    )
