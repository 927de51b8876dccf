"""Published vs reproduced: the seeds' figures as data, `mnistlab compare`, the report section.

No training: runs are written into the store (or built as records) directly, with per-epoch
accuracies the tests choose, and every column is checked against values computed here.
"""

from __future__ import annotations

import json
import math
import statistics

import pytest

from mnistlab.cli import main
from mnistlab.errors import ConfigError
from mnistlab.experiments import NOISE_RULE
from mnistlab.experiments.compare import compare
from mnistlab.experiments.store import RunRecord, RunStore
from mnistlab.experiments.suites import PUBLISHED_METRICS, builtin_suites, load_suite, parse_suite
from mnistlab.reports.compare import comparison_table, published_section
from mnistlab.reports.document import Heading, Table

SEEDS = ("seed000", "seed001", "seed002", "seed003", "seed004")

SUITE = """name = "tiny_pub"
[base]
model = "tiny"
epochs = 3
[[groups]]
name = "g"
axes = { lr = [0.01, 0.02] }
"""
PUBLISHED = """[published]
protocol = "best epoch on the test set, 1 run"
source = "a README"
g_lr0p01 = { test_acc_best = 99.1, note = "about" }
"""


def _binomial(p: float) -> float:
    return 100 * math.sqrt(p / 100 * (1 - p / 100) / 10_000)


def _noise(std: float, published: float) -> float:
    return 2 * math.sqrt(std**2 + _binomial(published) ** 2)


def _epochs(tests: list[float | None], vals: list[float] | None = None) -> list[dict]:
    vals = vals or [98.0] * len(tests)
    return [
        {"epoch": i + 1, "val_acc": v, "test_acc": t}
        for i, (t, v) in enumerate(zip(tests, vals, strict=True))
    ]


# -- the figures as data ----------------------------------------------------------------------


def test_every_seed_suite_carries_its_published_figures():
    for name in SEEDS:
        suite = load_suite(name)
        assert suite.published is not None, name
        cells = {c.name for c in suite.cells}
        assert {f.cell for f in suite.published.figures} <= cells
        assert {f.metric for f in suite.published.figures} <= set(PUBLISHED_METRICS)
        assert suite.published.protocol and suite.published.source
    figures = {
        (name, f.cell, f.metric): f.value
        for name in SEEDS
        for f in load_suite(name).published.figures  # type: ignore[union-attr]
    }
    # spot checks against the seeds' READMEs
    assert figures["seed000", "C_bs_sweep_sgd_onecycle_bs64", "test_acc_last"] == 99.52
    assert figures["seed000", "A_noBN_noDO_vanillaGD", "test_acc_last"] == 98.81
    assert sum(k[0] == "seed000" for k in figures) == 20  # the 20-epoch rows, one per cell
    assert figures["seed001", "E3", "test_acc_last3_min"] == 99.08
    assert not any(k[:2] == ("seed001", "E3a") for k in figures)  # the seed states none
    assert figures["seed002", "batch_bs32", "test_acc_final"] == 99.36
    assert figures["seed002", "dropout_p0p01", "val_acc_last"] == 99.05
    assert figures["seed003", "run1", "val_acc_best"] == 95.7
    assert figures["seed004", "exp_3_adam_onecycle", "epochs_to_99"] == 10


def test_published_figures_do_not_change_any_config_or_hash(tmp_path):
    without = parse_suite(_toml(SUITE), source="x")
    with_figures = parse_suite(_toml(SUITE + PUBLISHED), source="x")
    assert without.published is None and with_figures.published is not None
    assert [c.config for c in without.cells] == [c.config for c in with_figures.cells]
    hashes = [c.config.config_hash() for c in with_figures.cells]
    assert hashes == [c.config.config_hash() for c in without.cells]
    # a built-in seed suite hashes as the same file without its [published] table
    path = builtin_suites()["seed004"]
    text = path.read_text()
    stripped = tmp_path / "seed004.toml"
    stripped.write_text(text[: text.index("[published]")])
    assert load_suite(stripped).published is None
    assert [c.config.config_hash() for c in load_suite(stripped).cells] == [
        c.config.config_hash() for c in load_suite("seed004").cells
    ]
    overridden = with_figures.with_overrides(epochs=1)
    assert overridden.published == with_figures.published


def _toml(text: str) -> dict:
    import tomllib

    return tomllib.loads(text)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (
            "g_lr0p5 = { test_acc_best = 99.0 }\n",
            "no cell 'g_lr0p5' in this suite; cells: g_lr0p01",
        ),
        ("g_lr0p02 = { test_acc = 99.0 }\n", "unknown key 'test_acc'"),
        ("g_lr0p02 = { test_acc_best = 101.0 }\n", "must be an accuracy in %"),
        ("g_lr0p02 = { epochs_to_99 = 2.5 }\n", "epochs_to_99 must be a positive integer"),
    ],
)
def test_bad_published_tables_are_one_line_errors(tmp_path, capsys, extra, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(SUITE + PUBLISHED + extra)
    with pytest.raises(ConfigError) as error:
        load_suite(path)
    message = str(error.value)
    assert fragment in message and "bad.toml" in message and "\n" not in message
    code = main(["compare", str(path), "--store", f"sqlite:///{tmp_path}/s.db"])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_missing_protocol_is_refused():
    text = SUITE + PUBLISHED.replace('protocol = "best epoch on the test set, 1 run"\n', "")
    with pytest.raises(ConfigError, match="protocol must be a non-empty string"):
        parse_suite(_toml(text), source="x")


# -- the comparison ---------------------------------------------------------------------------


def _record(cell, seed: int, tests, honest: float | None, state="finished", **config) -> RunRecord:
    values = {**cell.config.replace(seed=seed).to_dict(), **config}
    return RunRecord(
        number=seed,
        name=cell.name,
        seed=seed,
        cell_id=f"{cell.name}-{seed}",
        state=state,
        config=values,
        summary={"test_acc": honest, "val_acc": 98.0},
        epochs=_epochs(tests) if tests is not None else [],
        run_dir="",
    )


def test_columns_and_verdicts_equal_what_the_rule_gives():
    suite = load_suite("seed004")
    cells = {c.name: c for c in suite.cells}
    one, two, three, four = (cells[n] for n in sorted(cells))
    # 20 epochs, as planned (test_acc_last counts only a run that ran them all)
    lead = [97.0] * 17
    curves = [lead + [98.5, 99.1, 99.5], lead + [98.9, 99.0, 99.58], lead + [99.2, 99.3, 99.4]]
    honest = [99.45, 99.5, 99.4]
    records = [_record(one, s, curves[s], honest[s]) for s in range(3)]
    records.append(
        _record(two, 0, [97.0] * 18 + [98.0, 99.5], 99.3)
    )  # one seed: binomial noise only
    # no per-epoch test accuracy (monitor_test off: not part of the config, so it still counts)
    records.append(_record(three, 0, [None] * 20, 99.2, monitor_test=False))
    records.append(_record(four, 0, [], None, state="diverged"))
    # the same cell trained with other values (a grid with --epochs 2): left out, counted
    records.append(_record(one, 0, [99.0, 99.9], 99.9, epochs=2))
    result = compare(suite, records)
    rows = {(r.cell, r.metric): r for r in result.rows}
    assert len(result.rows) == 8 and result.other_runs == 1

    best = rows[one.name, "test_acc_last"]
    ours = [c[-1] for c in curves]  # seed 004 published its epoch-20 figure
    assert best.published == 99.56 and best.runs == 3 and best.seed_protocol.n == 3
    assert best.seed_protocol.mean == pytest.approx(statistics.fmean(ours))
    assert best.seed_protocol.std == pytest.approx(statistics.stdev(ours))
    assert best.honest.mean == pytest.approx(statistics.fmean(honest))
    assert best.honest.std == pytest.approx(statistics.stdev(honest))
    diff = statistics.fmean(ours) - 99.56
    noise = _noise(statistics.stdev(ours), 99.56)
    assert best.diff == pytest.approx(diff) and best.noise == pytest.approx(noise)
    assert abs(diff) <= noise and best.verdict == "within noise"

    reach = rows[one.name, "epochs_to_99"]
    firsts = [19, 19, 18]  # the first epoch at >= 99% of each curve
    assert reach.seed_protocol.mean == pytest.approx(statistics.fmean(firsts))
    assert reach.noise == pytest.approx(2 * statistics.stdev(firsts))
    assert reach.diff == pytest.approx(statistics.fmean(firsts) - 4) and reach.verdict == "above"

    single = rows[two.name, "test_acc_last"]
    assert single.seed_protocol.std is None  # one seed: seed_std counts as 0
    assert single.noise == pytest.approx(2 * _binomial(99.10))
    assert single.diff == pytest.approx(0.4) and single.verdict == "above"
    assert rows[two.name, "epochs_to_99"].verdict == "above"  # 20 vs 15, no seed noise

    blind = rows[three.name, "test_acc_last"]
    assert blind.verdict == "no per-epoch test accuracy (monitor_test off)"
    assert blind.honest.mean == 99.2 and blind.diff is None
    assert rows[four.name, "test_acc_last"].verdict == "every run diverged (1)"

    table = comparison_table(result)
    assert table.rows[0][:9] == [
        one.name,
        PUBLISHED_METRICS["test_acc_last"],
        "99.56",
        f"{statistics.fmean(ours):.2f} ± {statistics.stdev(ours):.2f}",
        f"{statistics.fmean(honest):.2f} ± {statistics.stdev(honest):.2f}",
        "3",
        f"{diff:+.2f}",
        f"{noise:.2f}",
        "within noise",
    ]
    assert table.rows[1][2] == "4" and table.rows[1][6] == f"{statistics.fmean(firsts) - 4:+.1f}"


def test_val_and_last3_protocols_and_cells_without_a_figure():
    suite = load_suite("seed001")
    cells = {c.name: c for c in suite.cells}
    e1, e3a = cells["E1"], cells["E3a"]
    tests = [97.0, 98.7, 98.2, 98.5, 98.4]
    records = [_record(e1, 0, tests, 98.6), _record(e3a, 0, [98.0, 98.9], 98.8)]
    rows = {(r.cell, r.metric): r for r in compare(suite, records).rows}
    assert rows["E1", "test_acc_last3_min"].seed_protocol.mean == min(tests[-3:])
    assert rows["E1", "test_acc_last3_max"].seed_protocol.mean == max(tests[-3:])
    assert rows["E1", "test_acc_best"].seed_protocol.mean == max(tests)
    free = rows["E3a", "test_acc_best"]  # the seed published nothing for E3a
    assert free.published is None and free.seed_protocol.mean == 98.9
    assert free.verdict == "no published figure"
    assert rows["E2", "test_acc_best"].verdict == "not run"

    seed003 = load_suite("seed003")
    run3 = next(c for c in seed003.cells if c.name == "run3")
    record = _record(run3, 0, [99.0, 99.1], 99.2)
    record.epochs[:] = _epochs([99.0, 99.1], vals=[99.1, 99.3])
    row = next(r for r in compare(seed003, [record]).rows if r.cell == "run3")
    assert row.metric == "val_acc_best" and row.seed_protocol.mean == 99.3
    assert row.noise == pytest.approx(2 * _binomial(99.25))
    assert row.diff == pytest.approx(0.05) and row.verdict == "within noise"


# -- through the store and the command line ---------------------------------------------------


def _fill(url: str, suite, runs: dict[tuple[str, int], list[float]], **overrides) -> None:
    """Queue `runs` (cell name, seed) of `suite` and finish each with the given test curve."""
    store = RunStore(url)
    study = store.study(suite.name)
    cells = {c.name: c for c in suite.with_overrides(**overrides).cells}
    store.enqueue(study, [(n, cells[n].config.replace(seed=s)) for n, s in runs])
    while (trial := store.claim(study)) is not None:
        curve = runs[trial.user_attrs["name"], trial.user_attrs["seed"]]
        summary = {"state": "finished", "val_acc": 98.0, "test_acc": curve[-1] - 0.1}
        store.finish(trial._trial_id, summary, _epochs(curve))


def test_compare_reads_the_store_and_prints_json(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/store.db"
    suite = load_suite("seed002")
    # batch_bs32, dropout_p0p05 and arch_enhanced are one config: run once, listed three times
    lead = [98.0] * 18  # all 20 planned epochs: the seed's figure is the last epoch's
    _fill(
        url, suite, {("batch_bs32", 0): lead + [99.0, 99.5], ("batch_bs32", 1): lead + [99.1, 99.3]}
    )
    assert main(["compare", "seed002", "--store", url, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["suite"] == "seed002" and out["noise_rule"] == NOISE_RULE and out["store_found"]
    assert set(out) == {
        "suite",
        "protocol",
        "source",
        "store",
        "store_found",
        "noise_rule",
        "other_runs",
        "rows",
    }
    rows = {(r["config"], r["metric"]): r for r in out["rows"]}
    vals = [98.0, 98.0]  # _epochs' default val curve
    for name in ("batch_bs32", "dropout_p0p05", "arch_enhanced"):
        row = rows[name, "val_acc_last"]
        assert row["runs"] == 2 and row["seed_protocol"]["mean"] == max(vals)
        assert row["honest_test"]["mean"] == pytest.approx(statistics.fmean([99.4, 99.2]))
        assert row["honest_test"]["n"] == 2 and row["verdict"] == "below"
    final = rows["batch_bs32", "test_acc_final"]  # the seed's own test figure: test once
    assert final["published"] == 99.36
    assert final["seed_protocol"]["mean"] == pytest.approx(99.3)
    assert final["noise"] == pytest.approx(_noise(statistics.stdev([99.4, 99.2]), 99.36))
    assert final["verdict"] == "within noise"
    assert rows["batch_bs16", "val_acc_last"]["verdict"] == "not run"
    assert set(out["rows"][0]) >= {"config", "metric", "published", "seed_protocol", "diff"}


def test_text_output_footer_help_and_unknown_suite(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/store.db"
    suite = load_suite("seed004")
    curve = [98.0] * 18 + [99.0, 99.9]  # all 20 planned epochs: 0.34 above, noise 0.13
    _fill(url, suite, {("exp_1_sgd_onecycle", 0): curve})
    _fill(url, suite, {("exp_1_sgd_onecycle", 0): [99.0, 99.7]}, epochs=2)  # a shorter grid
    assert main(["compare", "seed004", "--store", url]) == 0
    out = capsys.readouterr().out
    flat = " ".join(out.split())
    lines = out.splitlines()
    (best,) = [line for line in lines if "exp_1_sgd_onecycle" in line and "last epoch" in line]
    assert "99.90" in best and "+0.34" in best and best.rstrip(" │").endswith("above")
    # epochs to 99%: the honest column stays empty (a test accuracy there would mean nothing)
    (reach,) = [line for line in lines if "exp_1_sgd_onecycle" in line and ">= 99%" in line]
    cells = [cell.strip() for cell in reach.split("│")]
    assert cells[5] == "–" and "99.90" not in reach
    assert "not run" in out and "ours, seed protocol" in out
    assert " ".join(NOISE_RULE.split()) in flat
    assert "Left out: 1 finished run(s) of suite seed004" in flat

    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    assert " ".join(NOISE_RULE.split()) in " ".join(capsys.readouterr().out.split())

    assert main(["compare", "seed999"]) == 2
    err = capsys.readouterr().err
    assert "seed000" in err and "PATH.toml" in err and "ablations" not in err
    assert len(err.strip().splitlines()) == 1
    assert main(["compare", "speedrun"]) == 2
    assert "no [published] table" in capsys.readouterr().err

    missing = tmp_path / "none.db"
    assert main(["compare", "seed003", "--store", f"sqlite:///{missing}"]) == 0
    assert "nothing has been run yet" in capsys.readouterr().out and not missing.exists()


def test_report_section_is_the_same_table():
    suite = load_suite("seed003")
    run2 = next(c for c in suite.cells if c.name == "run2")
    records = [_record(run2, 0, [98.0, 99.0], 99.1)]
    blocks = published_section("seed003", records)
    assert isinstance(blocks[0], Heading) and blocks[0].text == "Published vs reproduced"
    tables = [b for b in blocks if isinstance(b, Table)]
    assert tables == [comparison_table(compare(suite, records))]
    assert published_section("rep", records) == []  # not a built-in suite
    assert published_section("speedrun", []) == []  # built in, no published figures


def test_report_has_the_section(tmp_path):
    from mnistlab.reports.build import write_report

    url = f"sqlite:///{tmp_path}/store.db"
    _fill(url, load_suite("seed003"), {("run1", 0): [95.0, 95.9]})
    write_report(url, "seed003", tmp_path / "report", download=False, device="cpu")
    text = (tmp_path / "report" / "REPORT.md").read_text()
    section = text.split("## Published vs reproduced")[1].split("\n## ")[0]
    assert "| run1 | best epoch's val acc (picked on val) | 95.70 |" in section
    assert "| run2 |" in section and "not run" in section
