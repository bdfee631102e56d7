"""A minimal streaming zip writer: entries copied from another zip unchanged, or written in place.

Local headers are patched after the data (the output is seekable), sizes beyond 2 GiB get zip64
records, and an existing entry's attributes can be kept. Only what :mod:`hatch_modelpack.wheel_writer`
needs; the standard library's ``zipfile`` cannot copy an entry without recompressing it.
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from hatch_modelpack.errors import WheelWriteError

#: Read/write chunk for stored files and copied entries.
COPY_CHUNK = 4 << 20

# Same threshold as the standard library's zipfile: beyond it, sizes and offsets go to zip64 records
# (some readers treat the 32-bit fields as signed).
ZIP64_LIMIT = (1 << 31) - 1
_ZIP_FILECOUNT_LIMIT = 0xFFFF
_DEFAULT_VERSION = 20
_ZIP64_VERSION = 45
_UNIX = 3
UTF8_FLAG = 0x800
_DESCRIPTOR_FLAG = 0x08

LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64 = struct.Struct("<4sQ2H2L4Q")
_END64_LOCATOR = struct.Struct("<4sLQL")


# -- the zip container ----------------------------------------------------------------------------


@dataclass
class Entry:
    name: bytes
    flags: int
    method: int
    dos_time: int
    dos_date: int
    crc: int
    compressed_size: int
    size: int
    offset: int
    external_attr: int
    create_system: int = _UNIX
    create_version: int = _DEFAULT_VERSION
    extract_version: int = _DEFAULT_VERSION
    internal_attr: int = 0
    extra: bytes = b""  # without any zip64 field: that one is generated
    zip64_local: bool = False


def dos_datetime(date_time: Sequence[int]) -> tuple[int, int]:
    y, mo, d, h, mi, s = date_time
    return (y - 1980) << 9 | mo << 5 | d, h << 11 | mi << 5 | s // 2


def _strip_zip64(extra: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, i)
        if tag != 0x0001:
            out += extra[i : i + 4 + length]
        i += 4 + length
    return bytes(out)


class ZipOut:
    """A minimal streaming zip writer to a seekable file: local headers are patched after the data."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.entries: list[Entry] = []

    def _local_header(self, e: Entry) -> bytes:
        extra = e.extra
        csize, size = e.compressed_size, e.size
        version = e.extract_version
        if e.zip64_local:
            extra = struct.pack("<HHQQ", 1, 16, size, csize) + extra
            csize = size = 0xFFFFFFFF
            version = max(version, _ZIP64_VERSION)
        head = LOCAL.pack(
            b"PK\x03\x04",
            version,
            0,
            e.flags,
            e.method,
            e.dos_time,
            e.dos_date,
            e.crc,
            csize,
            size,
            len(e.name),
            len(extra),
        )
        return head + e.name + extra

    def begin(self, e: Entry) -> None:
        e.offset = self.fh.tell()
        if e.zip64_local:
            e.extract_version = max(e.extract_version, _ZIP64_VERSION)
            e.create_version = max(e.create_version, _ZIP64_VERSION)
        self.fh.write(self._local_header(e))

    def finish(self, e: Entry) -> None:
        """Patch the local header with the final CRC and sizes, then record the entry."""
        if not e.zip64_local and max(e.size, e.compressed_size) > ZIP64_LIMIT:
            raise WheelWriteError(
                f"{e.name.decode()}: the file grew past 2 GiB while it was being written to the wheel; "
                "rebuild once nothing else is writing to it"
            )
        end = self.fh.tell()
        self.fh.seek(e.offset)
        self.fh.write(self._local_header(e))
        self.fh.seek(end)
        self.entries.append(e)

    def close(self) -> None:
        fh = self.fh
        start = fh.tell()
        for e in self.entries:
            fields: list[int] = []
            size, csize, offset = e.size, e.compressed_size, e.offset
            if size > ZIP64_LIMIT or csize > ZIP64_LIMIT:
                fields += [size, csize]
                size = csize = 0xFFFFFFFF
            if offset > ZIP64_LIMIT:
                fields.append(offset)
                offset = 0xFFFFFFFF
            extra = e.extra
            create_version, extract_version = e.create_version, e.extract_version
            if fields:
                extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields) + extra
                create_version = max(create_version, _ZIP64_VERSION)
                extract_version = max(extract_version, _ZIP64_VERSION)
            fh.write(
                _CENTRAL.pack(
                    b"PK\x01\x02",
                    create_version,
                    e.create_system,
                    extract_version,
                    0,
                    e.flags,
                    e.method,
                    e.dos_time,
                    e.dos_date,
                    e.crc,
                    csize,
                    size,
                    len(e.name),
                    len(extra),
                    0,
                    0,
                    e.internal_attr,
                    e.external_attr,
                    offset,
                )
            )
            fh.write(e.name + extra)
        end = fh.tell()
        count, cd_size = len(self.entries), end - start
        if count > _ZIP_FILECOUNT_LIMIT or start > ZIP64_LIMIT or cd_size > ZIP64_LIMIT:
            fh.write(_END64.pack(b"PK\x06\x06", 44, _ZIP64_VERSION, _ZIP64_VERSION, 0, 0, count, count, cd_size, start))
            fh.write(_END64_LOCATOR.pack(b"PK\x06\x07", 0, end, 1))
        fh.write(
            _END.pack(
                b"PK\x05\x06",
                0,
                0,
                min(count, 0xFFFF),
                min(count, 0xFFFF),
                min(cd_size, 0xFFFFFFFF),
                min(start, 0xFFFFFFFF),
                0,
            )
        )


def copy_entry(src: BinaryIO, info: zipfile.ZipInfo, out: ZipOut) -> None:
    """Copy one entry's compressed bytes unchanged (no recompression)."""
    if info.flag_bits & 0x1:
        raise WheelWriteError(f"{info.filename}: encrypted zip entries are not supported in a wheel")
    src.seek(info.header_offset)
    head = LOCAL.unpack(src.read(LOCAL.size))
    if head[0] != b"PK\x03\x04":
        raise WheelWriteError(f"{info.filename}: bad local file header in the wheel hatchling wrote")
    name = src.read(head[10])  # the raw bytes, whatever their encoding
    src.seek(head[11], os.SEEK_CUR)
    e = entry_like(
        info,
        name=name,
        flags=info.flag_bits & ~_DESCRIPTOR_FLAG,
        method=info.compress_type,
        crc=info.CRC,
        compressed_size=info.compress_size,
        size=info.file_size,
    )
    out.begin(e)
    remaining = info.compress_size
    while remaining:
        chunk = src.read(min(COPY_CHUNK, remaining))
        if not chunk:
            raise WheelWriteError(f"{info.filename}: the wheel hatchling wrote is truncated")
        out.fh.write(chunk)
        remaining -= len(chunk)
    out.finish(e)


def entry_like(
    info: zipfile.ZipInfo, *, name: bytes, flags: int, method: int, crc: int, compressed_size: int, size: int
) -> Entry:
    """A new entry that keeps an existing one's time, attributes, versions and extra field."""
    dos_date, dos_time = dos_datetime(info.date_time)
    return Entry(
        name=name,
        flags=flags,
        method=method,
        dos_time=dos_time,
        dos_date=dos_date,
        crc=crc,
        compressed_size=compressed_size,
        size=size,
        offset=0,
        external_attr=info.external_attr,
        create_system=info.create_system,
        create_version=info.create_version,
        extract_version=info.extract_version,
        internal_attr=info.internal_attr,
        extra=_strip_zip64(info.extra),
        zip64_local=max(size, compressed_size) > ZIP64_LIMIT,
    )
