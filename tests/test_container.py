"""example_project/Dockerfile, built and run for real with podman: a prediction over HTTP equals the original.

No registry is reachable here, so the base image is made with debootstrap (Debian bookworm, python3)
and imported as ``localhost/modelpack-python-base:bookworm``; it is kept between runs and reused by
name. The model image installs from an offline wheelhouse made on the host (``pip wheel``) and is built
with ``--network none``. Podman runs with runc, cgroupfs and explicit ulimits (a containers.conf given
through CONTAINERS_CONF). The test removes the containers and images it made (not the base image).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, Project, run
from test_serve import free_port, http, status_of

pytestmark = [pytest.mark.slow, pytest.mark.container]

BASE_IMAGE = "localhost/modelpack-python-base:bookworm"


def _mirror() -> str:
    """The Debian mirror this machine's apt sources already use."""
    for source in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = source.read_text()
        except OSError:
            continue
        for url in re.findall(r"(?:URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, flags=re.M):
            if url.rstrip("/").endswith("/debian"):
                return url
    return "http://deb.debian.org/debian"


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment for podman: runc, cgroupfs, ulimits the sandbox allows."""
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        # The README's test command installs them; skipping must be asked for, never silent.
        if os.environ.get("MODELPACK_SKIP_CONTAINER") == "1":
            pytest.skip(f"MODELPACK_SKIP_CONTAINER=1 and {', '.join(missing)} missing")
        pytest.fail(
            f"needs {', '.join(missing)}: apt-get install podman runc debootstrap (the README's test command does), or set MODELPACK_SKIP_CONTAINER=1"
        )
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    hard = subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True, text=True, check=True).stdout.strip()
    conf.write_text(
        f'[containers]\ndefault_ulimits = ["nofile={hard}:{hard}", "nproc=32768:32768"]\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n'
    )
    yield dict(os.environ, CONTAINERS_CONF=str(conf))


def _base_image(env: dict[str, str], work: Path) -> str:
    if subprocess.run(["podman", "image", "exists", BASE_IMAGE], env=env).returncode == 0:
        return BASE_IMAGE
    rootfs = work / "rootfs"
    run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,python3-pip",
            "bookworm",
            str(rootfs),
            _mirror(),
        ],
        timeout=1800,
    )
    shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    shutil.rmtree(rootfs / "var" / "lib" / "apt" / "lists", ignore_errors=True)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(
        ["podman", "import", "-", BASE_IMAGE], stdin=tar.stdout, env=env, capture_output=True, text=True, timeout=900
    )
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    assert imported.returncode == 0 and tar.returncode == 0, imported.stderr
    return BASE_IMAGE


def test_dockerfile_builds_verifies_and_serves_with_podman(
    podman: dict[str, str], tmp_path: Path, build_env: dict[str, str], wheelhouse: Path
) -> None:
    import numpy as np
    import pandas as pd

    base = _base_image(podman, tmp_path)
    # The example as a user has it: train, build the wheel.
    context = tmp_path / "example_project"
    shutil.copytree(
        REPO / "example_project",
        context,
        ignore=shutil.ignore_patterns("artifacts", "dist", "__pycache__", "wheelhouse"),
    )
    run([sys.executable, str(context / "train.py")], timeout=600)
    Project(context, "churn-model").build(build_env, "--wheel")
    # The offline wheelhouse: the model wheel, hatch-modelpack[serve] (this checkout) and everything they need.
    plugin = next(wheelhouse.glob("hatch_modelpack-*.whl"))
    wheels = context / "wheelhouse"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--wheel-dir",
            str(wheels),
            str(next((context / "dist").glob("*.whl"))),
            f"hatch-modelpack[serve] @ {plugin.as_uri()}",
        ],
        env=build_env,
        timeout=1200,
    )

    tag = f"localhost/churn-service-test:{uuid.uuid4().hex[:10]}"
    name = f"churn-service-test-{uuid.uuid4().hex[:10]}"
    try:
        build_started = time.monotonic()
        built = run(
            ["podman", "build", "--network", "none", "--build-arg", f"BASE={base}", "-t", tag, str(context)],
            env=podman,
            timeout=1800,
        )
        assert "verified 1.2.0 ('churn',)" in built.stdout + built.stderr
        size = int(run(["podman", "image", "inspect", "--format", "{{.Size}}", tag], env=podman).stdout.strip())
        print(f"\nimage: {size / 1e6:.0f} MB, built in {time.monotonic() - build_started:.0f} s")  # shown with -s
        port = free_port()
        run(["podman", "run", "-d", "--init", "--name", name, "-p", f"127.0.0.1:{port}:8080", tag], env=podman)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while status_of(f"{url}/v2/models/churn/ready") != 200:
            state = run(
                ["podman", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}", name], env=podman
            ).stdout.strip()
            if state.startswith(("exited", "stopped")) or time.monotonic() > deadline:
                logs = run(["podman", "logs", name], env=podman, check=False)
                raise AssertionError(f"the container did not become ready ({state}):\n{logs.stdout}{logs.stderr}")
            time.sleep(0.5)
        status, meta = http("GET", f"{url}/v2/models/churn")
        assert status == 200 and meta["versions"] == ["1.2.0"] and meta["platform"] == "joblib"
        sample = pd.read_csv(context / "artifacts" / "sample.csv")
        inputs = [
            {
                "name": c,
                "datatype": "FP64" if pd.api.types.is_numeric_dtype(sample[c]) else "BYTES",
                "shape": [len(sample)],
                "data": sample[c].tolist(),
            }
            for c in sample.columns
        ]
        status, answer = http(
            "POST",
            f"{url}/v2/models/churn/infer",
            {"parameters": {"content_type": "pd", "predict_proba": True}, "inputs": inputs},
        )
        assert status == 200, answer
        proba = next(o for o in answer["outputs"] if o["name"] == "predict_proba")
        got = np.array(proba["data"]).reshape(proba["shape"])[:, 1]
        want = np.load(context / "artifacts" / "sample_predictions.npy")
        assert np.allclose(got, want, rtol=0, atol=1e-12), (got, want)
        # SIGTERM through --init: the server stops cleanly and promptly.
        started = time.monotonic()
        run(["podman", "stop", "-t", "20", name], env=podman)
        assert time.monotonic() - started < 15
        assert run(["podman", "inspect", "-f", "{{.State.ExitCode}}", name], env=podman).stdout.strip() == "0"
    finally:
        subprocess.run(["podman", "rm", "-f", name], env=podman, capture_output=True)
        subprocess.run(["podman", "rmi", "-f", tag], env=podman, capture_output=True)
        assert (
            json.loads(
                run(["podman", "ps", "-a", "--format", "json", "--filter", f"name={name}"], env=podman).stdout or "[]"
            )
            == []
        )
