"""The example end to end, as a service team would see it: train, build, install clean, load, predict.

Run from anywhere: python example_project/demo.py
It makes its own virtual environments under a temporary directory (nothing is installed globally),
builds hatch-modelpack's own wheel so the isolated build can find the plugin, builds the churn-model
wheel with `python -m build`, installs it into a clean environment with pip, checks the predictions
against the ones saved at training time, and asks the HTTP service for a prediction.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def sh(*cmd: object, env: dict[str, str] | None = None) -> None:
    print("$", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, env=env)


def venv(path: Path) -> Path:
    sh(sys.executable, "-m", "venv", path)
    return path / "bin" / "python"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the working directory (venvs, wheels) afterwards")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelpack-demo-"))
    print(f"working in {work} (kept if anything fails)")

    # 1. Train, in a training environment.
    train = venv(work / "train-env")
    sh(train, "-m", "pip", "install", "-q", "scikit-learn", "pandas", "joblib", "build")
    sh(train, HERE / "train.py")

    # 2. Build the model wheel. The plugin would come from your index; here we build it from this checkout.
    wheelhouse = work / "wheelhouse"
    sh(train, "-m", "build", "--wheel", "--outdir", wheelhouse, REPO)
    env = dict(os.environ, PIP_FIND_LINKS=" ".join(filter(None, [str(wheelhouse), os.environ.get("PIP_FIND_LINKS")])))
    sh(train, "-m", "build", "--outdir", work / "dist", HERE, env=env)
    wheel = work / "dist" / "churn_model-1.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        print("\nwheel contents:")
        for info in zf.infolist():
            print(f"  {info.file_size:>10}  {info.filename}")
        meta = zf.read("churn_model-1.2.0.dist-info/METADATA").decode()
        print("".join(f"  {line}\n" for line in meta.splitlines() if line.startswith("Requires-Dist")))

    # 3. Install it into a clean service environment: pip pulls the pinned scikit-learn.
    service = venv(work / "service-env")
    sh(service, "-m", "pip", "install", "-q", wheel)

    # 4. Load and predict, and compare with the predictions saved at training time.
    check = f"""
import json, numpy as np, pandas as pd, sys
import churn_model
assert not any(m in sys.modules for m in ("sklearn", "joblib")), "import must not load the framework"
model = churn_model.load()
got = model.predict_proba(pd.read_csv({str(HERE / "artifacts" / "sample.csv")!r}))[:, 1]
want = np.load({str(HERE / "artifacts" / "sample_predictions.npy")!r})
assert np.allclose(got, want, atol=1e-12), (got, want)
print("churn-model", churn_model.__version__, "models:", churn_model.models())
print("first predictions:", np.round(got[:5], 4).tolist(), "(identical to training time)")
print("requires:", churn_model.metadata()["requires"])
"""
    sh(service, "-c", check)

    # 5. Serve it over HTTP and ask for one prediction.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(service), str(HERE / "service.py"), "--port", str(port)])
    try:
        for _ in range(100):
            try:
                health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1))
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit("the service did not start")
        record = [{"tenure_months": 3, "monthly_charges": 95.0, "support_calls": 4, "contract": "monthly"}]
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict", data=json.dumps(record).encode(), method="POST"
        )
        answer = json.load(urllib.request.urlopen(req, timeout=10))
        print("service health:", health)
        print("service prediction for a new, unhappy monthly customer:", answer["churn_probability"])
    finally:
        server.terminate()
        server.wait()
    if not args.keep:
        shutil.rmtree(work)
    print("\ndemo passed")


if __name__ == "__main__":
    main()
