"""Reports: `mnistlab report` on a small real grid — sections, numbers, bad input, rendering."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mnistlab.cli import main
from mnistlab.experiments.store import RunRecord, RunStore
from quick_config import quick_base

# 2 configs that train and 1 that diverges (lr 100 without momentum), 2 seeds each; the model
# is a small one (6k params, 0.5 M MACs) because every finished run and the report evaluate
# all 10k test images
SUITE = (
    'name = "rep"\n[base]\n'
    + quick_base(model="s003_run1", epochs=2)
    + """[[groups]]
name = "g"
variants = [
  { name = "sgd" },
  { name = "adam", optimizer = "adam", lr = 0.003 },
  { name = "boom", lr = 100.0, momentum = 0.0 },
]
"""
)

SECTIONS = (
    "Provenance",
    "Full results",
    "Best config",
    "Top 2 configs",
    "Learning curves (top 2)",
    "Test-set diagnostics of the best run",
    "Constraint verification",
    "Model cards",
    "Timing",
    "Parameter budget: Pareto front",
    "All runs",
)
IMAGES = ("curves.png", "confusion.png", "misclassified.png", "pareto.png")


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> dict:
    """One small grid in a tmp store and one report of it, shared by every test here."""
    root = tmp_path_factory.mktemp("report")
    suite = root / "rep.toml"
    suite.write_text(SUITE)
    store = f"sqlite:///{root}/store.db"
    argv = ["grid", str(suite), "--store", store, "--runs-dir", str(root / "runs")]
    assert main([*argv, "--seeds", "2", "--no-progress", "--no-download"]) == 0
    out = root / "report"
    code = main(["report", "--store", store, "--suite", "rep", "--out", str(out), "--no-download"])
    assert code == 0
    records = RunStore(store, heartbeat=False).records(
        RunStore(store, heartbeat=False).study("rep", create=False)
    )
    return {"root": root, "store": store, "out": out, "records": records}


def markdown_table(text: str, heading: str) -> list[dict[str, str]]:
    """The first table after `heading` as one dict per row."""
    section = text.split(f"\n{heading}\n", 1)[1]
    block = next(chunk for chunk in section.split("\n\n") if chunk.startswith("| "))
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in block.splitlines()]
    header, body = rows[0], rows[2:]
    return [dict(zip(header, row, strict=True)) for row in body]


@pytest.mark.long
def test_report_has_every_section_and_image(grid):
    out = grid["out"]
    markdown = (out / "REPORT.md").read_text()
    page = (out / "index.html").read_text()
    for section in SECTIONS:
        assert f"\n## {section}\n" in markdown, section
        assert f">{section}</h2>" in page, section
    for image in IMAGES:
        assert (out / "img" / image).stat().st_size > 10_000, image
        assert f"](img/{image})" in markdown and f'src="img/{image}"' in page
    # provenance at the top, no network references in the page
    head = markdown.split("## Full results")[0]
    for key in ("mnistlab version", "git commit", "torch version", "device", "date", "command"):
        assert f"| {key}" in head
    assert re.search(r"\| command \| `[^`]+` \|", head)
    assert "http://" not in page and "https://" not in page
    # nothing of the writer's machine: neither its working directory nor the report's own path
    assert str(Path.cwd()) not in markdown and "working directory" not in markdown


def _mean_std(values: list[float], digits: int) -> str:
    """The table's cell, computed here: mean, and ± sample std (n - 1) over two or more seeds."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def test_results_table_numbers_equal_the_store(grid):
    markdown = (grid["out"] / "REPORT.md").read_text()
    table = {row["config"]: row for row in markdown_table(markdown, "## Full results")}
    # expected values from the stored runs, computed in this test (not by the report's code)
    finished: dict[str, list[dict]] = {}
    for record in grid["records"]:
        if record.state == "finished":
            finished.setdefault(record.name, []).append(record.summary)
    assert {name: len(runs) for name, runs in finished.items()} == {"g_sgd": 2, "g_adam": 2}
    for name, runs in finished.items():
        cells = table[name]
        assert cells["val acc %"] == _mean_std([r["val_acc"] for r in runs], 2)
        assert cells["test acc %"] == _mean_std([r["test_acc"] for r in runs], 2)
        assert cells["val loss"] == _mean_std([r["val_loss"] for r in runs], 4)
        assert cells["seeds"] == "2"
        assert cells["params"] == f"{runs[0]['params']:,}"
        assert " ± " in cells["val acc %"]
    # order: mean val acc, best first (same model: ties go to the lower val loss); the
    # diverged config last

    def rank(name: str) -> tuple[float, float]:
        runs = finished[name]
        return (-sum(r["val_acc"] for r in runs), sum(r["val_loss"] for r in runs))

    by_val = sorted(finished, key=rank)
    assert list(table) == [*by_val, "g_boom"]
    # per run: every stored val acc appears in the runs table
    runs = markdown_table(markdown, "## All runs")
    by_trial = {int(r["trial"]): r for r in runs}
    for record in grid["records"]:
        value = record.summary.get("val_acc")
        assert by_trial[record.number]["val acc %"] == ("–" if value is None else f"{value:.2f}")


def test_diverged_run_shows_as_diverged(grid):
    markdown = (grid["out"] / "REPORT.md").read_text()
    diverged = [r for r in grid["records"] if r.state == "diverged"]
    assert {r.name for r in diverged} == {"g_boom"} and len(diverged) == 2
    epoch = diverged[0].summary["diverged_epoch"]
    results = {row["config"]: row for row in markdown_table(markdown, "## Full results")}
    assert results["g_boom"]["status"] == f"2 diverged at epoch {epoch}"
    assert results["g_boom"]["val acc %"] == "–"
    runs = markdown_table(markdown, "## All runs")
    assert [r["state"] for r in runs if r["config"] == "g_boom"] == [
        f"diverged at epoch {epoch}"
    ] * 2
    checklist = {r["config"]: r for r in markdown_table(markdown, "## Constraint verification")}
    assert checklist["g_boom"]["last 3 epochs ≥ 99.4% (every seed)"].startswith("✗ seed")


@pytest.mark.long
def test_a_suite_changed_after_its_runs_is_reported_as_it_is_now(grid, tmp_path, monkeypatch):
    """A store whose suite was edited and re-run holds two configs under one name. The report
    must not crash on them; for a built-in suite it ranks the configs as the suite is now and
    names the runs it leaves out."""
    import mnistlab.reports.build as build
    from mnistlab.experiments.results import config_key
    from mnistlab.experiments.suites import load_suite

    store = f"sqlite:///{tmp_path}/store.db"
    shutil.copy(grid["root"] / "store.db", tmp_path / "store.db")
    edited = tmp_path / "rep.toml"
    edited.write_text(SUITE.replace("epochs = 2", "epochs = 1"))
    assert "epochs = 1" in edited.read_text()
    argv = ["grid", str(edited), "--store", store, "--runs-dir", str(tmp_path / "runs")]
    assert main([*argv, "--no-progress", "--no-download"]) == 0
    report = ["report", "--store", store, "--suite", "rep", "--no-download"]

    # a user's suite: every config is shown, each name with two configs carries its hash
    assert main([*report, "--out", str(tmp_path / "all")]) == 0
    rows = markdown_table((tmp_path / "all" / "REPORT.md").read_text(), "## Full results")
    names = [row["config"] for row in rows]
    assert len(names) == 6 and all(" (config " in name for name in names)

    # as for a built-in suite: only the edited configs are ranked, the old ones named
    keys = load_suite(edited).config_keys()
    monkeypatch.setattr(build, "current_config_keys", lambda suite: keys)
    assert main([*report, "--out", str(tmp_path / "now")]) == 0
    markdown = (tmp_path / "now" / "REPORT.md").read_text()
    rows = markdown_table(markdown, "## Full results")
    assert sorted(row["config"] for row in rows) == ["g_adam", "g_boom", "g_sgd"]
    one_epoch = [
        r
        for r in RunStore(store, heartbeat=False).records(
            RunStore(store, heartbeat=False).study("rep", create=False)
        )
        if config_key(r.config) in keys
    ]
    assert {row["config"]: row["epochs"] for row in rows} == {r.name: "1" for r in one_epoch}
    assert "Left out of this report's tables: 6 run(s) of 3 config(s)" in markdown


def test_bad_input_exits_2_and_keeps_the_report(grid, capsys, tmp_path):
    out = tmp_path / "kept"
    shutil.copytree(grid["out"], out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    missing = tmp_path / "nothing.db"
    empty = f"sqlite:///{tmp_path}/empty.db"
    RunStore(empty, heartbeat=False)  # a store file without any suite
    pending = f"sqlite:///{tmp_path}/pending.db"
    RunStore(pending, heartbeat=False).study("queued")  # a suite without a finished run
    cases = [
        (["--store", f"sqlite:///{missing}"], "no store at"),
        (["--store", empty], "is empty"),
        (["--store", grid["store"], "--suite", "nope"], "no suite 'nope'"),
        (["--store", pending, "--suite", "queued"], "no finished run"),
        (["--store", grid["store"], "--suite", "rep", "--top-k", "0"], "--top-k"),
    ]
    for flags, fragment in cases:
        code = main(["report", *flags, "--out", str(out), "--no-download"])
        err = capsys.readouterr().err
        assert code == 2, (flags, err)
        assert fragment in err and len(err.strip().splitlines()) == 1, err
    assert not missing.exists()  # a typo in --store does not create a store
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert not list(tmp_path.glob(".kept.tmp-*"))


def test_republish_replaces_files_and_keeps_unrelated_ones(tmp_path):
    from mnistlab.reports.build import _publish

    out, new = tmp_path / "out", tmp_path / "new"
    (out / "img").mkdir(parents=True)
    (out / "img" / "old.png").write_bytes(b"stale")
    (out / "COMMAND.txt").write_text("kept\n")
    (new / "img").mkdir(parents=True)
    (new / "img" / "curves.png").write_bytes(b"png")
    (new / "REPORT.md").write_text("# new\n")
    (new / "index.html").write_text("<html></html>\n")
    paths = _publish(new, out)
    assert (out / "REPORT.md").read_text() == "# new\n" and (out / "img" / "curves.png").exists()
    assert not (out / "img" / "old.png").exists()
    assert (out / "COMMAND.txt").read_text() == "kept\n"
    assert paths[:2] == [out / "REPORT.md", out / "index.html"]


def _record(
    state: str, accs: list[float], planned: int, name: str = "x", aliases=(), **summary
) -> RunRecord:
    epochs = [{"epoch": i + 1, "val_acc": a, "seconds": 1.0} for i, a in enumerate(accs)]
    return RunRecord(
        number=0,
        name=name,
        seed=0,
        cell_id=name,
        state=state,
        config={"epochs": planned, "model": "tiny"},
        summary={"val_acc": max(accs, default=None), "val_loss": 0.1, **summary},
        epochs=epochs,
        run_dir="",
        aliases=tuple(aliases),
    )


def test_identical_config_under_two_names_is_listed_but_ranked_once():
    from mnistlab.reports.tables import group_configs, ranked, results_table, topk_table

    records = [
        _record("finished", [99.0], 1, name="B_sgd", aliases=["C_sgd_bs128"], params=10),
        _record("finished", [98.0], 1, name="C_sgd_bs64", params=10),
    ]
    groups = group_configs(records)
    names = [row[1] for row in results_table(groups).rows]
    assert names == ["B_sgd", "C_sgd_bs128 (= B_sgd)", "C_sgd_bs64"]
    assert [g.name for g in ranked(groups)] == ["B_sgd", "C_sgd_bs64"]
    assert [row[1] for row in topk_table(groups, 5).rows] == ["B_sgd", "C_sgd_bs64"]


def test_missing_epochs_consistency_and_time_to_99():
    from mnistlab.reports.constraints import consistency
    from mnistlab.reports.tables import run_status
    from mnistlab.reports.timing import reach

    short = _record("finished", [98.0, 99.1], planned=3)
    assert run_status(short) == "missing epochs: 2/3 recorded"
    assert run_status(_record("diverged", [], 3, diverged_epoch=2)) == "diverged at epoch 2"
    assert not consistency([short], 99.0).ok  # fewer than 3 epochs cannot show consistency
    steady = _record("finished", [97.0, 99.5, 99.45, 99.41], planned=4)
    assert consistency([steady], 99.4).ok
    assert not consistency([steady, _record("finished", [99.5, 99.3, 99.5], 3)], 99.4).ok
    assert reach(steady) == (2, 2.0) and reach(short, 99.5) is None


def test_model_card_counts_shapes_and_receptive_fields():
    from mnistlab.models import count_params, create_model
    from mnistlab.models.summary import GLOBAL, model_card

    tiny = create_model("tiny")
    card = model_card(tiny)
    assert card.params == count_params(tiny) == sum(r.params for r in card.rows) == 15_882
    convs = [r for r in card.rows if r.kind.startswith("Conv2d")]
    assert [int(r.receptive_field) for r in convs] == [3, 5, 10, 14, 24, 32, 32]
    assert card.rows[-1].receptive_field == GLOBAL and card.rows[-1].output_shape == (10, 1, 1)
    assert convs[1].macs == 12 * 28 * 28 * 8 * 9
    assert card.has_bn and card.dropout_ps and card.gap_head
    # a residual add sees as far as its wider branch; the shared pool is listed per call
    residual = model_card(create_model("s002_residual"))
    rf = {r.name: r.receptive_field for r in residual.rows}
    assert rf["stage3.0.conv"] == 18 and rf["shortcut3.conv"] == 10
    assert [r.name for r in residual.rows].count("pool") == 3
    assert residual.params == sum(r.params for r in residual.rows) == 19_282
    assert not model_card(create_model("tiny", use_bn=False, dropout_p=0.0)).has_bn


def test_only_the_cli_imports_reports():
    src = Path(__file__).resolve().parents[1] / "src" / "mnistlab"
    for path in src.rglob("*.py"):
        if path.parent.name in ("reports", "cli"):
            continue
        assert "mnistlab.reports" not in path.read_text(), path


def test_headless_chromium_renders_tables_and_images(grid, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed: apt-get install -y --no-install-recommends chromium")
    page = (grid["out"] / "index.html").resolve()
    flags = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    # CI keeps the screenshot (MNISTLAB_ARTIFACTS) so a person can look at the rendered page
    artifacts = Path(os.environ.get("MNISTLAB_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "report-page.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout
    # the page's own script counts images that failed to load, once every image has settled
    assert re.search(r'data-broken-images="0"', dom), dom[:500]
    assert f'data-images="{len(IMAGES)}"' in dom
    assert dom.count("<table") >= 8 and "g_sgd" in dom
    for src in re.findall(r'<img src="([^"]+)"', dom):
        assert (grid["out"] / src).is_file(), src
    from PIL import Image as PILImage

    assert shot.stat().st_size > 50_000
    with PILImage.open(shot) as image:
        assert image.size == (1280, 4000)
        colors = image.convert("RGB").resize((320, 1000)).getcolors(maxcolors=1_000_000)
        assert colors is not None and len(colors) > 100  # not a blank page
