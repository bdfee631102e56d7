"""Cost of `modelpack sign` and of a signed first load() next to an unsigned one (whole process).

    PYTHONPATH=. python benchmarks/bench_signing.py [--trees 39 --rows 200000] [--repeats 7] [--work DIR]

Builds a RandomForestClassifier joblib (39 trees on 200k rows is the ~266 MB forest of bench.py),
packages it (python -m build --no-isolation, this checkout's hook), signs the wheel, installs it into
a fresh uv venv with cryptography, then runs `python -c "import forest_model as m; m.load()"` with and
without MODELPACK_PUBLIC_KEY, interleaved (A B A B), and prints medians.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def sh(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    sh(cmd, env=env)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", type=int, default=39)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--work")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-signing-"))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proj = work / "forest-model"
    art = proj / "artifacts" / "forest.joblib"
    if not art.exists():
        import joblib
        import numpy as np
        from sklearn.ensemble import RandomForestClassifier

        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((args.rows, 8)), rng.integers(0, 2, args.rows)
        art.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(RandomForestClassifier(n_estimators=args.trees, random_state=0, n_jobs=-1).fit(X, y), art)
    (proj / "README.md").write_text("# forest-model\n")
    (proj / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling", "hatch-modelpack"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "forest-model"\nversion = "1.0.0"\nrequires-python = ">=3.10"\n\n'
        '[tool.hatch.build.hooks.modelpack.models]\nforest = "artifacts/forest.joblib"\n'
    )
    size = art.stat().st_size
    print(f"artifact: {size / 1e6:.0f} MB ({args.trees} trees, {args.rows} rows); work dir {work}")
    dist = work / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    sh([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(proj)], env=env)
    wheel = next(dist.glob("*.whl"))
    key, pub = work / "key.pem", work / "key.pub"
    if not key.exists():
        sh(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)])
        sh(["openssl", "ec", "-in", str(key), "-pubout", "-out", str(pub)])

    # Signing: the whole `modelpack sign` process vs the sha256 pass it does not make.
    sign_times, sha_times = [], []
    for i in range(args.repeats):
        out = work / f"signed-{i}" / wheel.name
        out.parent.mkdir(exist_ok=True)
        sign_times.append(
            timed(
                [
                    sys.executable,
                    "-m",
                    "hatch_modelpack",
                    "sign",
                    str(wheel),
                    "--private-key",
                    str(key),
                    "-o",
                    str(out),
                ],
                env,
            )
        )
        t = time.perf_counter()
        with open(art, "rb") as f:
            hashlib.file_digest(f, "sha256")
        sha_times.append(time.perf_counter() - t)
    sys.path.insert(0, str(REPO))
    from hatch_modelpack import signing, signing_keys

    signer = signing_keys.load_signer(key)
    (work / "signed-x").mkdir(exist_ok=True)
    inproc_sign = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        signing.sign_wheel(wheel, signer, work / "signed-x" / wheel.name)
        inproc_sign.append(time.perf_counter() - t)
    print(f"sign_wheel in-process: median {statistics.median(inproc_sign):.3f} s")
    signed = work / "signed-0" / wheel.name
    assert all((work / f"signed-{i}" / wheel.name).read_bytes() == signed.read_bytes() for i in range(args.repeats)), (
        "not reproducible"
    )
    print(
        f"modelpack sign (whole process, {wheel.stat().st_size / 1e6:.0f} MB wheel): median {statistics.median(sign_times):.3f} s; "
        f"one sha256 pass over the artifact: {statistics.median(sha_times):.3f} s"
    )

    venv = work / "venv"
    if not venv.exists():
        sh(["uv", "venv", "--quiet", "--python", sys.executable, str(venv)])
    sh(
        [
            "uv",
            "pip",
            "install",
            "--quiet",
            "--compile-bytecode",  # else PYTHONDONTWRITEBYTECODE=1 makes every run compile scikit-learn again
            "--python",
            str(venv / "bin" / "python"),
            "--reinstall-package",
            "forest-model",
            str(signed),
            "cryptography",
        ]
    )
    py = str(venv / "bin" / "python")
    code = "import time; t=time.perf_counter(); import forest_model as m; m.load(); print(time.perf_counter()-t)"
    base_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MODELPACK_PUBLIC_KEY")}
    signed_env = dict(base_env, MODELPACK_PUBLIC_KEY=str(pub))
    sh([py, "-c", code], env=signed_env)  # warm the page cache and check it works
    runs: dict[str, list[float]] = {"unsigned": [], "signed": []}
    inproc: dict[str, list[float]] = {"unsigned": [], "signed": []}
    for _ in range(args.repeats):
        for label, e in (("unsigned", base_env), ("signed", signed_env)):
            t = time.perf_counter()
            out = sh([py, "-c", code], env=e).stdout
            runs[label].append(time.perf_counter() - t)
            inproc[label].append(float(out.strip().splitlines()[-1]))
    u, s = statistics.median(runs["unsigned"]), statistics.median(runs["signed"])
    ui, si = statistics.median(inproc["unsigned"]), statistics.median(inproc["signed"])
    print(
        f"first load(), whole process (python -c 'import forest_model as m; m.load()'), median of {args.repeats}: "
        f"unsigned {u:.3f} s, signed {s:.3f} s = {s / u:.3f}x"
    )
    print(f"  in-process (import + load): unsigned {ui:.3f} s, signed {si:.3f} s = {si / ui:.3f}x")
    print(
        f"  all runs unsigned {[round(x, 3) for x in runs['unsigned']]}, signed {[round(x, 3) for x in runs['signed']]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
