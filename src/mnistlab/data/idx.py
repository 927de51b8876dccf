"""Reading and writing IDX files, the format of the official MNIST release.

An IDX file is a 4-byte magic number ``00 00 <dtype> <ndim>``, then ``ndim`` big-endian uint32
dimension sizes, then the payload in C order. MNIST only uses dtype ``0x08`` (unsigned byte),
so that is all we support: anything else is a sign that the file is not what we think it is.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from mnistlab.errors import DataError

__all__ = ["read_idx", "write_idx", "is_gzip"]

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08
# MNIST uses 1 (labels) and 3 (images) dimensions; allow a little more for other IDX files but
# refuse absurd values, which only come from garbage headers.
_MAX_NDIM = 4
# Reading in chunks keeps a truncated file from being detected only after a huge allocation.
# MNIST's largest file holds 47,040,000 bytes of pixels; allow other IDX data up to 256 MiB
_MAX_PAYLOAD = 256 * 1024 * 1024
_CHUNK = 1 << 20


def is_gzip(path: str | os.PathLike[str]) -> bool:
    """True if the file starts with the gzip magic bytes.

    We look at the content rather than the ``.gz`` suffix: an IDX file always starts with two
    zero bytes, so the two cases can never be confused, and a renamed file still works.
    """
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _open(path: Path):
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def _read_exact(f, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DataError(
            f"{path}: truncated IDX file ({what}: got {len(data)} of {n} bytes); "
            "delete it and run 'mnistlab data' to download it again"
        )
    return data


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a (possibly gzipped) unsigned-byte IDX file into a writable uint8 array.

    Checks the magic number, the dtype (must be 0x08), the number of dimensions and that the
    payload has exactly the size the header announces. Any problem (including a corrupt gzip
    stream) raises :class:`DataError` with a one-line message naming the file.
    """
    path = Path(path)
    try:
        with _open(path) as f:
            magic = _read_exact(f, 4, path, "magic number")
            if magic[0] != 0 or magic[1] != 0:
                raise DataError(f"{path}: not an IDX file (bad magic number {magic.hex()})")
            if magic[2] != _UBYTE:
                raise DataError(
                    f"{path}: unsupported IDX dtype 0x{magic[2]:02x} (only 0x08 = uint8 is used "
                    "by MNIST)"
                )
            ndim = magic[3]
            if not 1 <= ndim <= _MAX_NDIM:
                raise DataError(
                    f"{path}: IDX header has {ndim} dimensions, expected 1..{_MAX_NDIM}"
                )
            dims = struct.unpack(f">{ndim}I", _read_exact(f, 4 * ndim, path, "dimensions"))
            n = math.prod(dims)  # Python ints: a hostile header cannot overflow this
            if n > _MAX_PAYLOAD:
                # refuse before allocating: a corrupt header must not exhaust memory
                raise DataError(
                    f"{path}: IDX header announces {n:,} bytes of data, more than the "
                    f"{_MAX_PAYLOAD:,} any MNIST file has; file corrupted"
                )
            # Read straight into the final array: no intermediate bytes object, and the result
            # is writable, so torch.from_numpy() takes it without a warning.
            out = np.empty(n, dtype=np.uint8)
            view = memoryview(out)
            got = 0
            while got < n:
                k = f.readinto(view[got : min(n, got + _CHUNK)])
                if not k:
                    break
                got += k
            if got != n:
                raise DataError(
                    f"{path}: truncated IDX file (header says {'x'.join(map(str, dims))} = {n} "
                    f"bytes of data, file has {got}); delete it and run 'mnistlab data' to "
                    "download it again"
                )
            if f.read(1):
                raise DataError(
                    f"{path}: IDX file is longer than its header says "
                    f"({'x'.join(map(str, dims))} = {n} bytes of data)"
                )
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as e:
        # gzip raises BadGzipFile (an OSError) for CRC/length errors, EOFError for a cut stream
        # and zlib.error for garbage inside the deflate stream: all mean a damaged file.
        msg = " ".join(str(e).split()) or type(e).__name__
        raise DataError(
            f"{path}: cannot read ({msg}); file corrupted or truncated; delete it and run "
            "'mnistlab data' to download it again"
        ) from None
    return out.reshape(dims)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file, gzipped if ``path`` ends with ``.gz``.

    The gzip header gets a fixed mtime and no file name, so equal arrays give equal bytes.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"write_idx only writes uint8 arrays, got {array.dtype}")
    if not 1 <= array.ndim <= _MAX_NDIM:
        raise ValueError(f"write_idx needs 1..{_MAX_NDIM} dimensions, got {array.ndim}")
    header = bytes([0, 0, _UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array).tobytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        with (
            open(path, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f,
        ):
            f.write(header)
            f.write(payload)
    else:
        with open(path, "wb") as f:
            f.write(header)
            f.write(payload)
