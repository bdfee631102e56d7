"""hatch-modelpack benchmarks: every figure a ratio measured side by side in one run.

    python benchmarks/bench.py             # the full run behind BENCHMARKS.md (~1 GiB models, ~15 min, ~12 GB disk)
    python benchmarks/bench.py --quick     # small sizes, proves the script works (CI; ~1-2 min)

It measures whatever the checkout's build hook does at the time it runs, as a new user would: every
figure comes from clean virtual environments (``uv venv`` without system site-packages, whose ``.pth``
files and larger ``python -c pass`` would flatter the import figures), each holding only what it needs.
The build venv has the plugin installed editable with its dependencies (hatchling, zlib-ng); the run
venvs hold the model wheels with the pinned frameworks, once installed with bytecode (as pip does) and
once without (uv's default; both run with ``PYTHONDONTWRITEBYTECODE=1``, as many Dockerfiles set, so the
second compiles every module it imports). Each timing is the median of ``--repeats`` runs, the compared
commands interleaved (A B A B ...) so background load hits both alike, and each figure records the
1-minute load average when it was taken (the machine is shared). Results go to stdout as Markdown and to
``--json`` as data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata as md
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
UV = shutil.which("uv") or str(Path(sys.executable).parent / "uv")

FULL = {
    "floats_bytes": 1 << 30,  # one float64 array, joblib-dumped
    "forest_trees": 39,  # ~265 MB RandomForestClassifier
    "forest_rows": 200_000,
    "pipeline_trees": 4,  # ~10 MB scaler + forest pipeline
    "pipeline_rows": 80_000,
    "mem_small": 20 << 20,
    "mem_big": 2 << 30,
    "repeats": 3,
    "fast_repeats": 15,
    "cold_repeats": 7,
    "sdist": True,
}
QUICK = {
    "floats_bytes": 32 << 20,
    "forest_trees": 3,
    "forest_rows": 20_000,
    "pipeline_trees": 2,
    "pipeline_rows": 4_000,
    "mem_small": 4 << 20,
    "mem_big": 64 << 20,
    "repeats": 2,
    "fast_repeats": 5,
    "cold_repeats": 3,
    "sdist": False,
}


# -- running things ---------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    maxrss_mb: float
    stdout: str


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without what would put other code on a venv's path (PYTHONPATH and the like)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH", "VIRTUAL_ENV")
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing written during the run: the no-bytecode venv stays so
    env.update(extra)
    return env


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> Run:
    """Run a command (in a clean environment unless given one); wall time and the child's peak RSS (from wait4)."""
    env = clean_env() if env is None else env
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        if proc.returncode:
            raise SystemExit(
                f"failed ({proc.returncode}): {' '.join(cmd)}\n{stdout}\n{err.read().decode(errors='replace')}"
            )
    return Run(elapsed, usage.ru_maxrss / 1024, stdout)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def interleaved(repeats: int, **fns: Callable[[], float]) -> dict[str, float]:
    """Median seconds of each function, run A B A B ... ``repeats`` times."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(fn())
    return {k: median(v) for k, v in times.items()}


def drop(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


# -- environment and models -----------------------------------------------------------------------


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in ("hatchling", "hatch-modelpack", "pip", "uv", "numpy", "scikit-learn", "joblib"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "-"
    try:
        from hatch_modelpack import __version__

        out["hatch-modelpack"] = __version__
    except ImportError:
        pass
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    out["checkout"] = commit.stdout.strip() or "-"
    out["python"] = platform.python_version()
    out["zlib"] = zlib.ZLIB_RUNTIME_VERSION
    from hatch_modelpack.deflate import DEFLATE_BACKEND

    out["deflate"] = DEFLATE_BACKEND
    return out


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f"{kb / (1 << 20):.0f} GiB"
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"platform": platform.platform(), "cpu": cpu, "cores": str(cores), "memory": mem}


def uv(*args: str) -> None:
    subprocess.run([UV, *args], check=True, env=clean_env())


def make_venv(work: Path) -> Path:
    """A clean venv with this checkout's plugin installed editable, its dependencies, and pip."""
    venv = work / "venv"
    uv("venv", "-q", "--python", sys.executable, str(venv))
    py = venv / "bin" / "python"
    uv("pip", "install", "-q", "--python", str(py), "-e", str(REPO), "pip")
    return py


def frameworks() -> list[str]:
    """The run venvs get the frameworks the models were made with (the loaders check recorded versions)."""
    return [f"{d}=={md.version(d)}" for d in ("numpy", "scipy", "scikit-learn", "joblib", "threadpoolctl")]


def make_models(work: Path, cfg: dict[str, Any]) -> dict[str, Path]:
    import joblib
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    models = work / "models"
    models.mkdir()
    rng = np.random.default_rng(0)
    out = {}

    def floats(name: str, nbytes: int) -> Path:
        path = models / f"{name}.joblib"
        joblib.dump(rng.standard_normal(nbytes // 8), path)
        out[name] = path
        return path

    floats("floats", cfg["floats_bytes"])
    floats("mem_small", cfg["mem_small"])
    floats("mem_big", cfg["mem_big"])
    X = rng.standard_normal((cfg["forest_rows"], 8))
    y = rng.integers(0, 2, cfg["forest_rows"])
    forest = RandomForestClassifier(n_estimators=cfg["forest_trees"], random_state=0, n_jobs=-1).fit(X, y)
    joblib.dump(forest, models / "forest.joblib")
    out["forest"] = models / "forest.joblib"
    del forest
    Xp = rng.standard_normal((cfg["pipeline_rows"], 8))
    yp = rng.integers(0, 2, cfg["pipeline_rows"])
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("model", RandomForestClassifier(n_estimators=cfg["pipeline_trees"], random_state=0)),
        ]
    )
    joblib.dump(pipe.fit(Xp, yp), models / "pipeline.joblib")
    out["pipeline"] = models / "pipeline.joblib"
    return out


HOOK_PYPROJECT = """\
[build-system]
requires = ["hatchling", "hatch-modelpack"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "1.0.0"
requires-python = ">=3.10"
dynamic = ["dependencies"]

[tool.hatch.metadata.hooks.modelpack]

[tool.hatch.build.hooks.modelpack]

[tool.hatch.build.hooks.modelpack.models]
{model} = "artifacts/{file}"
"""

PLAIN_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "1.0.0"
requires-python = ">=3.10"

[tool.hatch.build.targets.wheel]
packages = ["{pkg}"]

[tool.hatch.build.targets.wheel.force-include]
"artifacts/{file}" = "{pkg}/_models/{model}/{file}"
"""


def make_project(work: Path, kind: str, name: str, model: str, artifact: Path) -> Path:
    root = work / "projects" / f"{kind}-{name}"
    (root / "artifacts").mkdir(parents=True)
    os.link(artifact, root / "artifacts" / artifact.name)  # the same bytes, no copy
    pkg = name.replace("-", "_")
    template = HOOK_PYPROJECT if kind == "hook" else PLAIN_PYPROJECT
    (root / "pyproject.toml").write_text(template.format(name=name, pkg=pkg, model=model, file=artifact.name))
    if kind == "plain":
        (root / pkg).mkdir()
        (root / pkg / "__init__.py").write_text("")
    return root


# ru_maxrss of a forked child starts at the parent's RSS; VmHWM belongs to the child's own address space.
PEAK_RSS = "print(int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024)"


def build(py: Path, root: Path, target: str = "wheel") -> tuple[Run, Path]:
    dist = root / "dist"
    drop(dist)
    env = clean_env()
    env.pop("SOURCE_DATE_EPOCH", None)
    code = f"import hatchling.build as b; print(b.build_{target}({str(dist)!r}))\n" + PEAK_RSS
    r = run([str(py), "-c", code], cwd=root, env=env)
    lines = r.stdout.strip().splitlines()
    r.maxrss_mb = float(lines[-1])
    return r, dist / lines[-2]


# -- the figures ------------------------------------------------------------------------------------


@dataclass
class Report:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, figure: str, what: str, ours: float, base: float, unit: str, target: str = "", note: str = ""
    ) -> None:
        ratio = ours / base if base else float("nan")
        load = os.getloadavg()[0]  # when the figure was taken: the machine is shared
        self.rows.append(
            {
                "figure": figure,
                "what": what,
                "ours": ours,
                "baseline": base,
                "unit": unit,
                "ratio": ratio,
                "target": target,
                "note": note,
                "load": load,
            }
        )
        print(
            f"  {figure:<8} {what:<58} {ours:10.3f} {unit} vs {base:10.3f} {unit}  = {ratio:6.2f}x  {target}  load {load:.1f}  {note}",
            flush=True,
        )


def fig_floor(report: Report, models: dict[str, Path], work: Path, repeats: int) -> None:
    """Single-core sha256, crc32 and zlib throughput; read+sha256+write of the float artifact."""
    buf = os.urandom(256 << 20)
    mb = len(buf) / 1e6

    def throughput(fn: Callable[[], object]) -> float:
        t = time.perf_counter()
        fn()
        return mb / (time.perf_counter() - t)

    sha = median([throughput(lambda: hashlib.sha256(buf).digest()) for _ in range(repeats)])
    crc = median([throughput(lambda: zlib.crc32(buf)) for _ in range(repeats)])
    report.add("6 floor", "sha256 (one core), MB/s", sha, 1, "MB/s")
    report.add("6 floor", "crc32 (one core), MB/s", crc, 1, "MB/s")
    for name in ("floats", "forest"):
        with open(models[name], "rb") as f:
            sample = f.read(64 << 20)
        for level in (1, 6):
            t = time.perf_counter()
            packed = len(zlib.compress(sample, level))
            speed = len(sample) / 1e6 / (time.perf_counter() - t)
            report.add(
                "6 floor",
                f"zlib level {level} on {name} (one core), MB/s",
                speed,
                1,
                "MB/s",
                note=f"ratio {packed / len(sample):.3f}",
            )
        try:
            from zlib_ng import zlib_ng
        except ImportError:
            continue
        from hatch_modelpack.deflate import DEFLATE_LEVEL, DEFLATE_MEM_LEVEL, FAST_DEFLATE_LEVEL

        used_by = {(DEFLATE_LEVEL, DEFLATE_MEM_LEVEL): " (the writer's, small files)"}
        used_by[(FAST_DEFLATE_LEVEL, DEFLATE_MEM_LEVEL)] = " (the writer's, files >= 16 MiB)"
        for level, mem in sorted({(6, 8), *used_by}):
            t = time.perf_counter()
            c = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -15, mem)
            packed = len(c.compress(sample) + c.flush())
            speed = len(sample) / 1e6 / (time.perf_counter() - t)
            used = used_by.get((level, mem), "")
            report.add(
                "6 floor",
                f"zlib-ng level {level} memLevel {mem}{used} on {name} (one core), MB/s",
                speed,
                1,
                "MB/s",
                note=f"ratio {packed / len(sample):.3f}",
            )
    report.add(
        "6 floor", "read+sha256+write of the float artifact, s", copy_floor(models["floats"], work, repeats), 1, "s"
    )


def copy_floor(src: Path, work: Path, repeats: int) -> float:
    def once() -> float:
        dst = work / "floor.bin"
        t = time.perf_counter()
        sha = hashlib.sha256()
        buf = bytearray(4 << 20)
        view = memoryview(buf)
        with open(src, "rb") as f, open(dst, "wb") as g:
            while n := f.readinto(buf):
                sha.update(view[:n])
                g.write(view[:n])
        elapsed = time.perf_counter() - t
        dst.unlink()
        return elapsed

    return median([once() for _ in range(repeats)])


def fig_build(
    report: Report, py: Path, models: dict[str, Path], work: Path, repeats: int, floor: float | None
) -> dict[str, dict[str, Path]]:
    """Our hook vs plain hatchling force-include of the same bytes; wheel size; pip install time."""
    wheels: dict[str, dict[str, Path]] = {}
    hook = make_project(work, "hook", "churn-model", "churn", models["pipeline"])
    wheels["pipeline"] = {"hook": build(py, hook)[1]}  # only needed installed, for the import and load figures
    for name in ("floats", "forest"):
        wheels[name] = {"hook": build_case(report, py, models[name], name, work, repeats, floor)}
    return wheels


def build_case(
    report: Report, py: Path, artifact: Path, name: str, work: Path, repeats: int, floor: float | None
) -> Path:
    from hatch_modelpack.wheel_writer import Artifact, add_artifacts, choose_compression

    dist_name, model = f"{name}-model", name
    pkg = dist_name.replace("-", "_")
    arcname = f"{pkg}/_models/{model}/{artifact.name}"
    hook = make_project(work, "hook", dist_name, model, artifact)
    plain = make_project(work, "plain", dist_name, model, artifact)
    # The writer as the hook is meant to use it: hatchling's wheel without the artifact, then add_artifacts.
    bare = make_project(work, "bare", dist_name, model, artifact)
    (bare / "pyproject.toml").write_text(
        (plain / "pyproject.toml").read_text().split("[tool.hatch.build.targets.wheel.force-include]")[0]
    )
    (bare / pkg).mkdir()
    (bare / pkg / "__init__.py").write_text("")
    out: dict[str, Path] = {}
    chosen: list[str] = []

    def ours() -> float:
        r, out["hook"] = build(py, hook)
        return r.seconds

    def theirs() -> float:
        r, out["plain"] = build(py, plain)
        return r.seconds

    def writer() -> float:
        t = time.perf_counter()
        _, whl = build(py, bare)
        how = choose_compression(artifact, "auto")
        add_artifacts(whl, [Artifact(arcname, artifact, how)])
        out["writer"] = whl
        chosen.append(how)
        return time.perf_counter() - t

    t = interleaved(repeats, ours=ours, theirs=theirs, writer=writer)
    size = artifact.stat().st_size / 1e6
    target = {"floats": "<= 0.2x", "forest": "<= 0.35x"}[name]
    report.add(
        "1 build", f"{name} ({size:.0f} MB): the hook now vs plain hatchling, s", t["ours"], t["theirs"], "s", target
    )
    report.add(
        "1 build",
        f"{name}: hatchling + wheel_writer ({chosen[-1]}) vs plain hatchling, s",
        t["writer"],
        t["theirs"],
        "s",
        target,
    )
    if floor and name == "floats":
        report.add("1 build", "floats: hook now vs the floor (read+sha256+write), s", t["ours"], floor, "s", "<= 2x")
        report.add("1 build", "floats: hatchling + wheel_writer vs the floor, s", t["writer"], floor, "s", "<= 2x")
    size_target = "<= 1.0x" if name == "forest" else ""
    mb = {k: v.stat().st_size / 1e6 for k, v in out.items()}
    report.add(
        "1 size", f"{name}: wheel size, hook now vs plain hatchling, MB", mb["hook"], mb["plain"], "MB", size_target
    )
    report.add(
        "1 size",
        f"{name}: wheel size, wheel_writer vs plain hatchling, MB",
        mb["writer"],
        mb["plain"],
        "MB",
        size_target,
    )

    def install(whl: Path) -> Callable[[], float]:
        def go() -> float:
            target_dir = work / "pip-target"
            drop(target_dir)
            r = run(
                [
                    str(py),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--no-deps",
                    "--no-index",
                    "--no-compile",
                    "--target",
                    str(target_dir),
                    str(whl),
                ]
            )
            drop(target_dir)
            return r.seconds

        return go

    t = interleaved(repeats, ours=install(out["hook"]), writer=install(out["writer"]), theirs=install(out["plain"]))
    report.add(
        "1 install", f"{name}: pip install, hook's wheel now vs hatchling's, s", t["ours"], t["theirs"], "s", "<= 1.0x"
    )
    report.add(
        "1 install",
        f"{name}: pip install, wheel_writer's wheel vs hatchling's, s",
        t["writer"],
        t["theirs"],
        "s",
        "<= 1.0x",
    )
    drop(out["plain"])
    drop(out["writer"])
    return out["hook"]


def fig_sdist(report: Report, py: Path, work: Path) -> None:
    for name in ("floats", "forest"):
        root = work / "projects" / f"hook-{name}-model"
        r, sdist = build(py, root, "sdist")
        size = sdist.stat().st_size / 1e6
        rw, _ = build(py, root, "wheel")
        report.add(
            "sdist",
            f"{name}: sdist (tar.gz, gzip -9) vs wheel build time, s",
            r.seconds,
            rw.seconds,
            "s",
            note=f"sdist {size:.0f} MB",
        )
        drop(sdist)


def fig_memory(report: Report, py: Path, models: dict[str, Path], work: Path) -> None:
    rss = {}
    for name in ("mem_small", "mem_big"):
        root = make_project(work, "hook", name.replace("_", "-"), "m", models[name])
        rss[name] = build(py, root)[0].maxrss_mb
        drop(root)
    big, small = models["mem_big"].stat().st_size / 1e6, models["mem_small"].stat().st_size / 1e6
    report.add(
        "2 memory",
        f"build peak RSS, {big:.0f} MB artifact vs {small:.0f} MB, MB",
        rss["mem_big"],
        rss["mem_small"],
        "MB",
        "within +50 MB",
        note=f"difference {rss['mem_big'] - rss['mem_small']:+.0f} MB",
    )


def install_run_env(work: Path, wheels: dict[str, dict[str, Path]], bytecode: bool) -> Path:
    """A clean venv with the model wheels and their frameworks; compiled to bytecode as pip does, or not, as uv."""
    run_env = work / ("run-venv-bytecode" if bytecode else "run-venv-source")
    uv("venv", "-q", "--python", sys.executable, str(run_env))
    py = run_env / "bin" / "python"
    wheels_ = [str(w["hook"]) for w in wheels.values()]
    uv(
        "pip",
        "install",
        "-q",
        *(["--compile-bytecode"] if bytecode else []),
        "--python",
        str(py),
        *frameworks(),
        *wheels_,
    )
    # The floor for any package imported from source: an empty __init__.py (see fig_import).
    purelib = run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    (Path(purelib) / EMPTY_PACKAGE).mkdir()
    (Path(purelib) / EMPTY_PACKAGE / "__init__.py").write_text("")
    if bytecode:  # as the installer compiled the model wheels
        run([str(py), "-m", "compileall", "-q", str(Path(purelib) / EMPTY_PACKAGE)])
    return py


#: An empty package installed beside the model wheels. Without bytecode, importing *any* module from
#: source costs CPython ~0.9 ms once per process: the first compile() initialises the _ast types
#: (``python -c "import _ast"`` pays the same); ``python -c pass`` never compiles through compile().
EMPTY_PACKAGE = "modelpack_bench_empty"


def fig_import(report: Report, runs: dict[str, Path], repeats: int) -> None:
    """Whole processes: `import churn_model` against the interpreter starting and doing nothing."""
    for mode, py in runs.items():
        t = interleaved(
            repeats,
            ours=lambda py=py: run([str(py), "-c", "import churn_model"]).seconds,
            theirs=lambda py=py: run([str(py), "-c", "pass"]).seconds,
            empty=lambda py=py: run([str(py), "-c", f"import {EMPTY_PACKAGE}"]).seconds,
        )
        report.add(
            "3 import",
            f"python -c 'import churn_model' vs python -c pass ({mode}), s",
            t["ours"],
            t["theirs"],
            "s",
            "<= 1.1x",
        )
        report.add(
            "3 import",
            f"the floor: import of an empty package vs python -c pass ({mode}), s",
            t["empty"],
            t["theirs"],
            "s",
        )
        report.add(
            "3 import", f"python -c 'import churn_model' vs the empty package ({mode}), s", t["ours"], t["empty"], "s"
        )


def fig_cold(report: Report, py: Path, repeats: int) -> None:
    """Whole processes, the first thing a service does: our load() against bare joblib.load of the same file."""
    for name, pkg in (("pipeline", "churn_model"), ("forest", "forest_model")):
        path = run([str(py), "-c", f"import {pkg}; print({pkg}.path())"]).stdout.strip()
        size = Path(path).stat().st_size / 1e6
        t = interleaved(
            repeats,
            ours=lambda pkg=pkg: run([str(py), "-c", f"from {pkg} import load; load()"]).seconds,
            theirs=lambda path=path: run([str(py), "-c", f"import joblib; joblib.load({path!r})"]).seconds,
        )
        label = f"{name} ({size:.0f} MB): python -c 'from {pkg} import load; load()' vs 'import joblib; joblib.load(PATH)', s"
        report.add("4 cold", label, t["ours"], t["theirs"], "s", "<= 1.05x")


LOAD = """
import sys, time, json
import joblib, numpy, sklearn, sklearn.pipeline, sklearn.ensemble, sklearn.preprocessing, sklearn.tree
import importlib
pkg, path, how, kw = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
if how == "ours":
    mod = importlib.import_module(pkg)
    t = time.perf_counter(); obj = mod.load(**kw); dt = time.perf_counter() - t
else:
    t = time.perf_counter(); obj = joblib.load(path, **kw); dt = time.perf_counter() - t
print(dt)
"""


def fig_load(report: Report, py: Path, repeats: int) -> None:
    """First load() in a fresh process (frameworks imported, file cached) vs bare joblib.load."""
    cases = [
        ("pipeline", "churn_model", {}, ""),
        ("forest", "forest_model", {}, "<= 1.1x"),
        ("forest", "forest_model", {"mmap_mode": "r"}, ""),
        ("floats", "floats_model", {}, ""),
        ("floats", "floats_model", {"mmap_mode": "r"}, ""),
    ]
    for name, pkg, kw, target in cases:
        path = run([str(py), "-c", f"import {pkg}; print({pkg}.path())"]).stdout.strip()
        size = Path(path).stat().st_size / 1e6
        with open(path, "rb") as f:  # into the page cache
            while f.read(16 << 20):
                pass

        def one(how: str, pkg: str = pkg, path: str = path, kw: dict[str, Any] = kw) -> float:
            return float(run([str(py), "-c", LOAD, pkg, path, how, json.dumps(kw)]).stdout.strip().splitlines()[-1])

        t = interleaved(repeats, ours=lambda: one("ours"), theirs=lambda: one("bare"))
        label = f"{name} ({size:.0f} MB){' mmap_mode=r' if kw else ''}: load() vs joblib.load, s"
        report.add("4 load", label, t["ours"], t["theirs"], "s", target)


def fig_scan(report: Report, models: dict[str, Path], repeats: int) -> None:
    from hatch_modelpack.scanning import scan_file

    path = models["forest"]

    def scan() -> float:
        t = time.perf_counter()
        scan_file(path, "joblib")
        return time.perf_counter() - t

    def sha() -> float:
        t = time.perf_counter()
        h = hashlib.sha256()
        buf = bytearray(4 << 20)
        view = memoryview(buf)
        with open(path, "rb") as f:
            while n := f.readinto(buf):
                h.update(view[:n])
        return time.perf_counter() - t

    t = interleaved(repeats, ours=scan, theirs=sha)
    report.add(
        "5 scan",
        f"static scan of the forest ({path.stat().st_size / 1e6:.0f} MB) vs sha256 of it, s",
        t["ours"],
        t["theirs"],
        "s",
        "< 1.0x",
    )


# -- main -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: proves the script works (CI)")
    ap.add_argument("--repeats", type=int, help="repeats per build/load figure (median reported)")
    ap.add_argument("--workdir", type=Path, help="where models, projects and venvs go (default: a temp dir, removed)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument(
        "--only", default="floor,build,memory,sdist,import,cold,load,scan", help="comma-separated figures to run"
    )
    args = ap.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    repeats = args.repeats or cfg["repeats"]
    only = set(args.only.split(","))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="modelpack-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    need = cfg["floats_bytes"] * 3 + cfg["mem_big"] * 2 + (1 << 30)
    free = shutil.disk_usage(work).free
    if free < need:
        raise SystemExit(
            f"{work}: needs ~{need / 1e9:.0f} GB free, has {free / 1e9:.0f} GB; pass --workdir elsewhere or --quick"
        )
    info = {"mode": "quick" if args.quick else "full", "repeats": repeats, "machine": machine(), "versions": versions()}
    print(json.dumps(info, indent=2), flush=True)
    report = Report()
    t0 = time.perf_counter()
    try:
        print("making models and the venv...", flush=True)
        models = make_models(work, cfg)
        info["sizes_mb"] = {k: round(v.stat().st_size / 1e6, 1) for k, v in models.items()}
        py = make_venv(work)
        floor = None
        if "floor" in only:
            fig_floor(report, models, work, repeats)
            floor = report.rows[-1]["ours"]
        if "scan" in only:
            fig_scan(report, models, cfg["fast_repeats"] if args.quick else repeats)
        wheels = fig_build(report, py, models, work, repeats, floor)
        if "sdist" in only and cfg["sdist"]:
            fig_sdist(report, py, work)
        if "memory" in only:
            fig_memory(report, py, models, work)
        runs = {"bytecode": install_run_env(work, wheels, True), "no bytecode": install_run_env(work, wheels, False)}
        if "import" in only:
            fig_import(report, runs, cfg["fast_repeats"])
        if "cold" in only:
            fig_cold(report, runs["bytecode"], max(repeats, cfg["cold_repeats"]))
        if "load" in only:
            fig_load(report, runs["bytecode"], max(repeats, 3))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    info["seconds"] = round(time.perf_counter() - t0)
    info["results"] = report.rows
    print(markdown(info))
    if args.json:
        args.json.write_text(json.dumps(info, indent=2) + "\n")
    return 0


def markdown(info: dict[str, Any]) -> str:
    lines = [
        f"Mode: {info['mode']}, medians of {info['repeats']} interleaved runs, {info['seconds']} s in all.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info["machine"].items()),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        "",
        "Sizes (MB): " + ", ".join(f"{k} {v}" for k, v in info.get("sizes_mb", {}).items()),
        "",
        "| figure | measurement | ours | baseline | ratio | target | load avg | note |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for r in info["results"]:
        load = f"{r['load']:.1f}" if "load" in r else ""
        if r["unit"] == "MB/s" and r["baseline"] == 1:
            lines.append(f"| {r['figure']} | {r['what']} | {r['ours']:.0f} | | | | {load} | {r['note']} |")
        elif r["figure"].startswith("6") and r["baseline"] == 1:
            lines.append(f"| {r['figure']} | {r['what']} | {r['ours']:.2f} | | | | {load} | {r['note']} |")
        else:
            lines.append(
                f"| {r['figure']} | {r['what']} | {r['ours']:.3f} | {r['baseline']:.3f} | {r['ratio']:.2f}x | {r['target']} | {load} | {r['note']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
