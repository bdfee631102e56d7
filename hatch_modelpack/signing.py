"""Signatures into wheels: ``modelpack sign`` signs every model of a built wheel, and the build ships a
model's own ``signature = "PATH"`` (made earlier with the ``model_signing`` tool) after checking it.

Signing reads no artifact: the in-toto statement comes from the manifest
(:mod:`hatch_modelpack.signing_statement`), whose digests are first checked against the wheel's RECORD,
and the bundle is made by :mod:`hatch_modelpack.signing_keys`. Each signature lands at
``<package>/_models/<name>.sig``, the manifest records the signer, RECORD is rewritten, and every
other entry is copied byte for byte, so the wheel stays valid, installable and reproducible.
``model_signing verify`` accepts the signatures; reading and verifying them is
:mod:`hatch_modelpack.signatures`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from hatch_modelpack import zipstream
from hatch_modelpack.hashing import record_hash
from hatch_modelpack.signatures import coverage_problem, read_bundle
from hatch_modelpack.signing_keys import Signer, sign_payload
from hatch_modelpack.signing_statement import (
    DATA_DIR,
    MANIFEST_NAME,
    SigningError,
    payload_bytes,
    signature_arcname,
    statement,
)


@dataclass(frozen=True)
class Signed:
    model: str
    arcname: str
    signer: dict[str, Any]


@dataclass
class _Wheel:
    """What signing reads from a wheel: its entries, the manifest and RECORD (parsed and as entries)."""

    path: Path
    infos: list[zipfile.ZipInfo]
    manifest_info: zipfile.ZipInfo
    record_info: zipfile.ZipInfo
    manifest: dict[str, Any]
    rows: list[list[str]]

    @property
    def package(self) -> str:
        return self.manifest_info.filename.split("/")[0]

    @property
    def dist_info(self) -> str:
        return self.record_info.filename.split("/")[0]


def sign_wheel(wheel: Path, signer: Signer, output: Path | None = None) -> list[Signed]:
    """Add ``<package>/_models/<name>.sig`` for every model and record the signer in the manifest.

    Reads no artifact: the statement comes from the manifest, whose digests are first checked against
    the wheel's RECORD (a manifest that disagrees with the wheel is not signed). Every other entry is
    copied byte for byte; timestamps and attributes follow the manifest entry's (hatchling's fixed
    ones), so the result is reproducible.
    """
    whl = _read_wheel(Path(wheel))
    sigs, done = _sign_models(whl, signer)
    _rewrite(whl, Path(output) if output else whl.path, sigs)
    return done


def ship_signatures(pack: Any, manifest: dict[str, Any], *, editable: bool) -> dict[str, str]:
    """Check each ``signature = "PATH"`` against its model's manifest entry and record it.

    Returns the force-include mapping (source -> archive path) for a wheel. A signature that does not
    cover exactly the model's files and digests fails the build: shipping it would make every service
    that requires signatures refuse the model at load time instead.
    """
    mapping: dict[str, str] = {}
    for m in pack.models:
        if m.signature is None:
            continue
        entry = manifest["models"][m.name]
        key = f"`models.{m.name}.signature` in [{pack.table}]"
        fix = (
            f"Sign the artifact itself again and point {key} at the result, e.g. "
            f"`model_signing sign key {m.path} --private_key KEY.pem --signature {m.signature.relative_to(os.path.realpath(pack.root)).as_posix()}`."
        )
        try:
            stmt, signer = read_bundle(m.signature.read_bytes(), str(m.signature))
        except OSError as exc:
            raise SigningError(f"{m.signature}: {key} cannot be read ({exc.strerror}). {fix}") from None
        except SigningError as exc:
            raise SigningError(f"{exc} ({key}). {fix}") from None
        problem = coverage_problem(stmt, entry)
        if problem:
            raise SigningError(
                f"{m.signature}: the signature named by {key} does not match the artifact {m.path}: {problem}. {fix}"
            )
        if editable:
            rel = m.signature.relative_to(os.path.realpath(pack.root)).as_posix()
        else:
            rel = f"{DATA_DIR}/{m.name}.sig"
            mapping[str(m.signature)] = signature_arcname(pack.package, m.name)
        entry["signature"] = {"path": rel, **signer}
    return mapping


def _read_wheel(wheel: Path) -> _Wheel:
    try:
        zf = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise SigningError(f"{wheel}: cannot be opened as a wheel ({exc})") from None
    with zf:
        infos = zf.infolist()
        manifests = [i for i in infos if i.filename.count("/") == 1 and i.filename.endswith("/" + MANIFEST_NAME)]
        records = [i for i in infos if i.filename.count("/") == 1 and i.filename.endswith(".dist-info/RECORD")]
        if len(manifests) != 1 or len(records) != 1:
            raise SigningError(
                f"{wheel}: is not a model package built by hatch-modelpack (no single <package>/{MANIFEST_NAME} and RECORD)"
            )
        manifest = json.loads(zf.read(manifests[0]))
        rows = list(csv.reader(io.StringIO(zf.read(records[0]).decode("utf-8"))))
    if manifest.get("editable_root"):
        raise SigningError(f"{wheel}: is an editable wheel; sign the wheel `python -m build` makes")
    return _Wheel(wheel, infos, manifests[0], records[0], manifest, rows)


def _check_record(whl: _Wheel, entry: dict[str, Any], record: dict[str, str]) -> None:
    """Refuse a model whose manifest digests are not the ones RECORD lists: the wheel changed since its build."""
    parent = PurePosixPath(whl.package) / PurePosixPath(entry["path"]).parent
    for f in entry["files"]:
        arc = str(parent / f["path"])
        if record.get(arc) != record_hash(bytes.fromhex(f["sha256"])):
            raise SigningError(
                f"{whl.path}: {arc} is listed in RECORD as {record.get(arc)!r}, but the model manifest says sha256 "
                f"{f['sha256']}; the wheel was altered after it was built. Rebuild it, then sign."
            )


def _sign_models(whl: _Wheel, signer: Signer) -> tuple[dict[str, bytes], list[Signed]]:
    """archive name -> signature bytes for every model; records each signer in ``whl.manifest``."""
    record = {r[0]: r[1] for r in whl.rows if len(r) >= 2}
    sigs: dict[str, bytes] = {}
    done: list[Signed] = []
    for name, entry in whl.manifest["models"].items():
        _check_record(whl, entry, record)
        arcname = signature_arcname(whl.package, name)
        sigs[arcname] = sign_payload(payload_bytes(statement(entry)), signer)
        entry["signature"] = {"path": f"{DATA_DIR}/{name}.sig", **signer.describe()}
        done.append(Signed(name, arcname, entry["signature"]))
    return sigs, done


def _rewrite(whl: _Wheel, out_path: Path, sigs: dict[str, bytes]) -> None:
    """Write the signed wheel beside ``out_path`` and move it into place (atomic; the wheel's file mode)."""
    from hatch_modelpack import wheel_writer as ww
    from hatch_modelpack.manifest import dumps

    manifest_bytes = dumps(whl.manifest).encode("utf-8")
    minfo, rinfo = whl.manifest_info, whl.record_info
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as raw, open(whl.path, "rb") as src:
            out = zipstream.ZipOut(raw)
            for info in whl.infos:
                if info is rinfo or info.filename in sigs:
                    continue
                if info is minfo:
                    _write_new(out, info, minfo.filename, manifest_bytes)
                    for arcname, data in sigs.items():
                        _write_new(out, info, arcname, data)
                else:
                    zipstream.copy_entry(src, info, out)
            ww._write_record(out, rinfo, _new_record_rows(whl, manifest_bytes, sigs), whl.dist_info, [])
            out.close()
        os.chmod(tmp, stat.S_IMODE(os.stat(whl.path).st_mode))  # mkstemp's 0600 is not the wheel's mode
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_record_rows(whl: _Wheel, manifest_bytes: bytes, sigs: dict[str, bytes]) -> list[list[str]]:
    """RECORD's rows with the new manifest's hash and the signatures right after it (RECORD's own row is re-added)."""
    rows = []
    for r in whl.rows:
        if not r or r[0] in sigs or r[0] == whl.record_info.filename:
            continue
        if r[0] == whl.manifest_info.filename:
            rows.append([r[0], _record_hash(manifest_bytes), str(len(manifest_bytes))])
            rows += [[a, _record_hash(d), str(len(d))] for a, d in sigs.items()]
        else:
            rows.append(r)
    return rows


def _record_hash(data: bytes) -> str:
    return record_hash(hashlib.sha256(data).digest())


def _write_new(out: Any, like: zipfile.ZipInfo, arcname: str, data: bytes) -> None:
    """A deflated entry with ``like``'s time and attributes, deflated as the wheel writer deflates small files."""
    from hatch_modelpack.deflate import DEFLATE_LEVEL, deflate_block

    payload = deflate_block(data, None, True, DEFLATE_LEVEL)
    e = zipstream.entry_like(
        like,
        name=arcname.encode("utf-8"),
        flags=0,
        method=zipfile.ZIP_DEFLATED,
        crc=zlib.crc32(data),
        compressed_size=len(payload),
        size=len(data),
    )
    out.begin(e)
    out.fh.write(payload)
    out.finish(e)
