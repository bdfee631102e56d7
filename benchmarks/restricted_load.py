"""What the restricted unpickler costs: plain joblib.load vs the loader's restricted load, same file.

    python benchmarks/restricted_load.py [--rows 200000] [--trees 39] [--runs 7]

Each measurement is a fresh process (imports warm in the page cache, not in the interpreter) timing
only the load call; the figure is the median over ``--runs`` processes per side, alternating sides.
The hash check is left out of both (it is the same with or without the restriction).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PLAIN = """
import sys, time, joblib
t, c = time.perf_counter(), time.process_time(); joblib.load(sys.argv[1]); print(time.perf_counter() - t, time.process_time() - c)
"""
RESTRICTED = """
import sys, time
from hatch_modelpack.scanning import scan_file
from hatch_modelpack import loader
from pathlib import Path
p = Path(sys.argv[1])
names = scan_file(p, "joblib").global_names()
loader._VERIFIED_FILES[str(p)] = loader._fingerprint(p)
t, c = time.perf_counter(), time.process_time()
loader._restricted_joblib_load(p, {"name": "m", "globals": names}, {})
print(time.perf_counter() - t, time.process_time() - c)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--trees", type=int, default=39)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    import joblib
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "forest.joblib"
        rng = np.random.RandomState(0)
        X = rng.normal(size=(args.rows, 20))
        y = (X[:, 0] + rng.normal(size=args.rows) > 0).astype(int)
        joblib.dump(RandomForestClassifier(n_estimators=args.trees, random_state=0, n_jobs=2).fit(X, y), path)
        size = path.stat().st_size / 1e6
        env = {"PYTHONPATH": str(ROOT)}
        times: dict[str, list[float]] = {"plain": [], "restricted": []}
        for _ in range(args.runs):
            for side, code in (("plain", PLAIN), ("restricted", RESTRICTED)):
                out = subprocess.run(
                    [sys.executable, "-c", code, str(path)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env={**env, **_base_env()},
                )
                times[side].append(float(out.stdout.strip()))
        plain, restricted = statistics.median(times["plain"]), statistics.median(times["restricted"])
        print(f"{size:.0f} MB forest ({args.trees} trees, {args.rows} rows), median of {args.runs} processes each:")
        print(
            f"joblib.load {plain * 1000:.0f} ms, restricted {restricted * 1000:.0f} ms, ratio {restricted / plain:.3f}x"
        )
        print("all runs (s):", {k: [round(v, 3) for v in vs] for k, vs in times.items()})


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


if __name__ == "__main__":
    main()
