"""Build and load times for one large safetensors file: hatch-modelpack vs plain hatchling vs bare safetensors.

    python benchmarks/bench_safetensors.py [--mb 500] [--repeats 3] [--python VENV_PYTHON]

Builds the same 500 MB ``.safetensors`` file (seeded float32 noise) into a wheel three ways, interleaved:
with the hook (default ``compression = "auto"``, and ``"store"``) (``python -m build --wheel --no-isolation`` on a project with
``[tool.hatch.build.hooks.modelpack.models]``) and with plain hatchling (``force-include`` of the same
file). Then, in a venv holding safetensors and numpy (``--python``, or a new ``python -m venv`` with
``pip install safetensors numpy``), it installs the hook's wheel with ``--no-deps`` and times
``load()`` (sha256 check of every byte, then ``safetensors.numpy.load_file``) against a bare
``safetensors.numpy.load_file`` of the same file. Run it from the repository's environment
(hatchling, build); the plugin under test is the one importable there (set PYTHONPATH to a checkout).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_safetensors(path: Path, mb: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    total = mb * 1_000_000 // 4  # float32 elements, in tensors of at most 16 Mi elements (64 MiB)
    sizes = [1 << 24] * (total >> 24) + ([total % (1 << 24)] if total % (1 << 24) else [])
    header, offset = {}, 0
    for i, n in enumerate(sizes):
        header[f"layer{i}.weight"] = {"dtype": "F32", "shape": [n], "data_offsets": [offset, offset + n * 4]}
        offset += n * 4
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for n in sizes:
            f.write(rng.standard_normal(n, dtype=np.float32).tobytes())


def project(root: Path, name: str, artifact: Path, hook: bool, store: bool = False) -> Path:
    root.mkdir(parents=True)
    (root / "artifacts").mkdir()
    shutil.copy(artifact, root / "artifacts" / artifact.name)
    build = '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    meta = f'[project]\nname = "{name}"\nversion = "1.0"\n'
    if hook:
        body = f'[tool.hatch.build.hooks.modelpack.models]\nweights = "artifacts/{artifact.name}"\n'
        if store:  # float noise deflates ~7%, so "auto" deflates it; "store" skips deflate
            body = '[tool.hatch.build.hooks.modelpack]\ncompression = "store"\n' + body
    else:
        pkg = name.replace("-", "_")
        (root / pkg).mkdir()
        (root / pkg / "__init__.py").write_text("")
        body = (
            f'[tool.hatch.build.targets.wheel.force-include]\n"artifacts/{artifact.name}" = "{pkg}/{artifact.name}"\n'
        )
    (root / "pyproject.toml").write_text(build + meta + body)
    return root


def timed(cmd: list[str], **kw: object) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--python", help="a venv python with safetensors and numpy (default: make one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-st-") as tmp:
        work = Path(tmp)
        artifact = work / "model.safetensors"
        write_safetensors(artifact, args.mb)
        size = artifact.stat().st_size
        roots = {
            "hook": project(work / "hook", "st-hook", artifact, True),
            "hook (compression = store)": project(work / "store", "st-store", artifact, True, store=True),
            "plain hatchling": project(work / "plain", "st-plain", artifact, False),
        }
        times: dict[str, list[float]] = {k: [] for k in roots}
        for _ in range(args.repeats):
            for kind, root in roots.items():
                shutil.rmtree(root / "dist", ignore_errors=True)
                times[kind].append(timed([sys.executable, "-m", "build", "--wheel", "--no-isolation", str(root)]))
        wheels = {k: next((r / "dist").glob("*.whl")) for k, r in roots.items()}
        py = args.python
        if py is None:
            subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
            py = str(work / "venv" / "bin" / "python")
            subprocess.run([py, "-m", "pip", "install", "-q", "safetensors", "numpy"], check=True)
        subprocess.run(
            [py, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheels["hook"])], check=True
        )
        loads: dict[str, list[float]] = {"load()": [], "safetensors.numpy.load_file": []}
        code = {
            "load()": "import time, st_hook; t = time.perf_counter(); d = st_hook.load(); print(time.perf_counter() - t)",
            "safetensors.numpy.load_file": f"import time, safetensors.numpy as s; t = time.perf_counter(); d = s.load_file({str(artifact)!r}); print(time.perf_counter() - t)",
        }
        for _ in range(args.repeats):
            for k, c in code.items():  # a fresh process each time: load() hashes once per process
                loads[k].append(
                    float(subprocess.run([py, "-c", c], check=True, capture_output=True, text=True).stdout.strip())
                )
        subprocess.run([py, "-m", "pip", "uninstall", "-q", "-y", "st-hook"], check=True)
        print(f"safetensors file: {size / 1e6:.0f} MB, {args.repeats} interleaved repeats, medians")
        for k, v in times.items():
            print(f"  build {k:<28} {statistics.median(v):6.2f} s   wheel {wheels[k].stat().st_size / 1e6:.0f} MB")
        for k, v in loads.items():
            print(f"  load  {k:<28} {statistics.median(v):6.2f} s")


if __name__ == "__main__":
    main()
