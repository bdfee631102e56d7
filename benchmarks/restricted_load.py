"""What the restricted unpickler costs: plain joblib.load vs the loader's restricted load, same file.

    python benchmarks/restricted_load.py [--rows 335000] [--trees 39] [--runs 9] [--model PATH]

Each measurement is a fresh process timing only the load call (wall and CPU); the figures are medians
over ``--runs`` processes per side, alternating sides. The hash check is left out of both (it is the
same with or without the restriction). ``--model`` reuses (or creates) the forest at PATH.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PLAIN = """
import sys, time, joblib
t, c = time.perf_counter(), time.process_time()
joblib.load(sys.argv[1])
print(time.perf_counter() - t, time.process_time() - c)
"""
RESTRICTED = """
import sys, time
from pathlib import Path
from hatch_modelpack.runtime import _modelpack_integrity, _modelpack_unpickle
from hatch_modelpack.scanning import scan_file
p = Path(sys.argv[1])
names = scan_file(p, "joblib").global_names()
_modelpack_integrity._VERIFIED_FILES[str(p)] = _modelpack_integrity._fingerprint(p)
t, c = time.perf_counter(), time.process_time()
_modelpack_unpickle._restricted_joblib_load(p, {"name": "m", "globals": names}, {})
print(time.perf_counter() - t, time.process_time() - c)
"""


def _forest(path: Path, rows: int, trees: int) -> None:
    import joblib
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.RandomState(0)
    X = rng.normal(size=(rows, 20))
    y = (X[:, 0] + rng.normal(size=rows) > 0).astype(int)
    joblib.dump(RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=2).fit(X, y), path)


def _measure(path: Path, runs: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(ROOT)}
    wall: dict[str, list[float]] = {"plain": [], "restricted": []}
    cpu: dict[str, list[float]] = {"plain": [], "restricted": []}
    for _ in range(runs):
        for side, code in (("plain", PLAIN), ("restricted", RESTRICTED)):
            out = subprocess.run(
                [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, env=env
            )
            w, c = out.stdout.split()
            wall[side].append(float(w))
            cpu[side].append(float(c))
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=335_000)
    ap.add_argument("--trees", type=int, default=39)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--model", help="reuse (or create) the forest at this path")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.model) if args.model else Path(tmp) / "forest.joblib"
        if not path.exists():
            _forest(path, args.rows, args.trees)
        wall, cpu = _measure(path, args.runs)
        print(f"{path.stat().st_size / 1e6:.0f} MB forest, median of {args.runs} processes per side:")
        for label, data in (("wall", wall), ("cpu", cpu)):
            plain, restricted = statistics.median(data["plain"]), statistics.median(data["restricted"])
            print(
                f"{label}: joblib.load {plain * 1000:.0f} ms, restricted {restricted * 1000:.0f} ms, x{restricted / plain:.3f}"
            )
        print("all runs, wall (s):", {k: [round(v, 3) for v in vs] for k, vs in wall.items()})


if __name__ == "__main__":
    main()
