"""`mnistlab report`: read a suite from the store (and its run directories), write REPORT.md and
a self-contained index.html with PNGs beside them.

Reports never train. They evaluate the best run's saved weights on the test set (confusion
matrix, misclassified digits) and time inference of each architecture on this machine.
Everything is written into a temporary directory first and moved into place file by file, so a
failing report never leaves an empty or half-written report over a good one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import mnistlab
from mnistlab.config import TrainConfig
from mnistlab.engine.device import resolve_device
from mnistlab.errors import ConfigError, MnistlabError
from mnistlab.experiments.results import config_key, config_rows, stat
from mnistlab.experiments.storage import masked_url, sqlite_path
from mnistlab.experiments.store import RunRecord, RunStore
from mnistlab.experiments.suites import builtin_suites, current_config_keys, load_suite
from mnistlab.fsutil import atomic_write_text
from mnistlab.models import fit_to_budget
from mnistlab.models.summary import (
    LAYER_COLUMNS,
    ModelCard,
    format_macs,
    layer_rows,
    model_card,
)
from mnistlab.reports import plots
from mnistlab.reports.compare import published_section
from mnistlab.reports.constraints import Budget, Check, checklist_table, checks
from mnistlab.reports.diagnostics import pick_test_images, predict_test, resolve_run_dir
from mnistlab.reports.document import (
    Block,
    Heading,
    Image,
    Paragraph,
    Table,
    render_html,
    render_markdown,
)
from mnistlab.reports.tables import (
    ConfigGroup,
    best_block,
    best_run,
    group_configs,
    ranked,
    resolved_options,
    results_table,
    runs_table,
    state_counts,
    topk_table,
)
from mnistlab.reports.timing import (
    REACH_ACC,
    describe_device,
    inference_timing,
    load_average,
    process_peak_rss_mb,
    train_timing,
)
from mnistlab.run.build import build_model

REPORT_MD = "REPORT.md"
REPORT_HTML = "index.html"
IMAGES = "img"
MISTAKES_SHOWN = 32

# for a suite whose definition states no [budget] (or is not a built-in one)
DEFAULT_BUDGET = (20_000, 20, 99.4)


class ReportError(MnistlabError):
    """Nothing to report: no store, no suite, or no finished run."""


@dataclass
class Architecture:
    """One distinct model (name + resolved options) and the configs that use it."""

    model: str
    options: dict[str, Any]
    module: nn.Module
    card: ModelCard
    configs: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"`{self.model}` ({opts})" if opts else f"`{self.model}`"


# -- entry point --------------------------------------------------------------------------------


def write_report(
    store_url: str,
    suite: str | None,
    out_dir: str | Path,
    max_params: int | None = None,
    max_epochs: int | None = None,
    target: float | None = None,
    top_k: int = 5,
    command: str = "",
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    device: str = "auto",
) -> list[Path]:
    """Write DIR/REPORT.md, DIR/index.html and DIR/img/*.png; return their paths."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {top_k}")
    store = open_store(store_url)
    suite = choose_suite(store, suite)
    records = store.records(store.study(suite, create=False))
    groups, stale = group_configs(records), []
    # a built-in suite changed since some runs: rank its configs as they are now
    current = current_config_keys(suite)
    if current is not None:
        now = [r for r in records if config_key(r.config) in current]
        if len(now) < len(records) and ranked(group_configs(now)):
            groups = group_configs(now)
            stale = group_configs([r for r in records if r not in now])
    if not ranked(groups):
        counts = state_counts(records).text.rstrip(".") if records else "no runs"
        raise ReportError(f"suite {suite!r} has no finished run yet ({counts}); nothing to report")
    budget = resolve_budget(suite, max_params, max_epochs, target)
    for value, flag in ((budget.max_params, "--max-params"), (budget.max_epochs, "--max-epochs")):
        if value <= 0:
            raise ConfigError(f"{flag} must be > 0, got {value}")
    run_device = resolve_device(device)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / IMAGES).mkdir()
        context = _Context(
            store=store,
            store_url=store_url,
            suite=suite,
            records=records,
            groups=groups,
            stale=stale,
            budget=budget,
            top_k=top_k,
            command=command,
            device=run_device,
            data_dir=data_dir,
            download=download,
            tmp=tmp,
        )
        blocks = context.build()
        title = f"mnistlab report: {suite}"
        atomic_write_text(tmp / REPORT_MD, render_markdown(blocks))  # fsynced before the move
        atomic_write_text(tmp / REPORT_HTML, render_html(blocks, title))
        for page in (REPORT_MD, REPORT_HTML):
            os.chmod(tmp / page, _file_mode())  # mkstemp makes 0600: a report is for reading
        return _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def open_store(url: str) -> RunStore:
    path = sqlite_path(url)
    # opening a SQLite URL creates the file: a typo must not leave an empty store behind
    if path is not None and not path.is_file():
        raise ReportError(f"no store at {path} (from {url}); run `mnistlab grid` first")
    return RunStore(url, heartbeat=False)


def choose_suite(store: RunStore, suite: str | None) -> str:
    suites = store.suites()
    if not suites:
        raise ReportError(f"store {masked_url(store.url)} is empty; run `mnistlab grid` first")
    if suite is None:
        if len(suites) > 1:
            raise ReportError(
                f"store {masked_url(store.url)} holds several suites ({', '.join(suites)}); "
                "choose one with --suite"
            )
        return suites[0]
    if suite not in suites:
        raise ReportError(
            f"no suite {suite!r} in store {masked_url(store.url)}; stored: {', '.join(suites)}"
        )
    return suite


def resolve_budget(
    suite: str, max_params: int | None, max_epochs: int | None, target: float | None
) -> Budget:
    stated = builtin_suites().get(suite)
    known = load_suite(stated).budget if stated else None
    defaults = (known.max_params, known.max_epochs, known.target) if known else DEFAULT_BUDGET
    given = [max_params is not None, max_epochs is not None, target is not None]
    if all(given):
        source = "flags"
    elif known:
        source = f"suite {suite}'s [budget]" + (" and flags" if any(given) else "")
    else:
        source = "defaults" + (" and flags" if any(given) else "")
    return Budget(
        max_params if max_params is not None else defaults[0],
        max_epochs if max_epochs is not None else defaults[1],
        target if target is not None else defaults[2],
        source,
    )


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _publish(tmp: Path, out: Path) -> list[Path]:
    """Move the new files over the old ones (each rename atomic), images before the pages."""
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    new_images = sorted((tmp / IMAGES).iterdir())
    for image in new_images:
        os.replace(image, out / IMAGES / image.name)
        written.append(out / IMAGES / image.name)
    for name in (REPORT_MD, REPORT_HTML):
        os.replace(tmp / name, out / name)
    # images of an earlier report that this one no longer shows
    keep = {image.name for image in new_images}
    for old in (out / IMAGES).glob("*.png"):
        if old.name not in keep:
            old.unlink()
    return [out / REPORT_MD, out / REPORT_HTML, *written]


# -- provenance ---------------------------------------------------------------------------------


def git_commit() -> str:
    """The commit of the mnistlab source that wrote the report, or 'unknown'."""
    source = Path(mnistlab.__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=source, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    # an installed copy inside some other repository (a venv in a project) is not that commit
    if top is None or Path(top).resolve() / "src" / "mnistlab" != source:
        return "unknown"
    commit = git("rev-parse", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return commit + (" (with uncommitted changes)" if dirty else "")


# -- the report ---------------------------------------------------------------------------------


@dataclass
class _Context:
    store: RunStore
    store_url: str
    suite: str
    records: list[RunRecord]
    groups: list[ConfigGroup]
    stale: list[ConfigGroup]  # configs the suite no longer has, left out of the tables
    budget: Budget
    top_k: int
    command: str
    device: torch.device
    data_dir: str | Path | None
    download: bool
    tmp: Path
    architectures: dict[str, Architecture] = field(default_factory=dict)
    arch_of: dict[str, str | None] = field(default_factory=dict)  # config name -> arch key

    def build(self) -> list[Block]:
        self._collect_architectures()
        blocks: list[Block] = [Heading(1, f"mnistlab report: suite `{self.suite}`")]
        blocks += self.provenance()
        blocks += self.results()
        blocks += published_section(self.suite, self.records)  # seed suites only
        blocks += self.best()
        blocks += self.top()
        blocks += self.curves()
        blocks += self.diagnostics()
        blocks += self.constraints()
        blocks += self.model_cards()
        blocks += self.timing()
        blocks += self.pareto()
        blocks += [Heading(2, "All runs"), state_counts(self.records), runs_table(self.records)]
        return blocks

    def image(self, name: str) -> Path:
        return self.tmp / IMAGES / name

    # -- architectures --
    def _collect_architectures(self) -> None:
        for group in self.groups:
            config = group.config
            options = resolved_options(config)
            if config.get("max_params"):
                try:  # the width the engine chose to fit the budget
                    fit = fit_to_budget(str(config["model"]), int(config["max_params"]), **options)
                    options = {**options, **fit.options}
                except MnistlabError:
                    pass
            key = json.dumps(
                [config.get("model"), options, config.get("max_params", 0)],
                sort_keys=True,
                default=str,
            )
            self.arch_of[group.name] = None
            if key not in self.architectures:
                try:
                    module = build_model(TrainConfig.from_dict(config))
                except MnistlabError:
                    continue  # a config this version cannot build: shown as unknown
                self.architectures[key] = Architecture(
                    str(config.get("model")), options, module, model_card(module)
                )
            self.architectures[key].configs.append(group.name)
            self.arch_of[group.name] = key

    def card_of(self, group: ConfigGroup) -> ModelCard | None:
        key = self.arch_of.get(group.name)
        return self.architectures[key].card if key else None

    # -- sections --
    def provenance(self) -> list[Block]:
        budget = self.budget
        rows = [
            ["mnistlab version", mnistlab.__version__],
            ["git commit", git_commit()],
            ["torch version", torch.__version__],
            ["python", f"{platform.python_version()} on {platform.system()} {platform.machine()}"],
            ["device (this report)", describe_device(self.device)],
            ["date (UTC)", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")],
            # as typed: no working directory, which would publish the writer's machine's paths
            ["command", f"`{self.command}`" if self.command else "–"],
            ["store", f"`{masked_url(self.store_url)}`"],
            ["suite", f"`{self.suite}`"],
            [
                "constraints",
                f"< {budget.max_params:,} params, ≤ {budget.max_epochs} epochs, "
                f"val acc ≥ {budget.target:g}% (from {budget.source})",
            ],
        ]
        with_runs = len(ranked(self.groups, distinct=False))
        summary = (
            f"{len(self.groups)} configs ({with_runs} with a finished run) in suite "
            f"`{self.suite}`. " + state_counts(self.records).text
        )
        return [
            Heading(2, "Provenance"),
            Table(["", "value"], rows, ["l", "l"]),
            Paragraph(summary),
        ]

    def results(self) -> list[Block]:
        return [
            Heading(2, "Full results"),
            Paragraph(
                "Sorted by **val acc (desc)**, then **params (asc)**, **val loss (asc)**, "
                "**time per epoch (asc)**, as seed 000 does. Val acc and val loss are the best "
                "epoch's, chosen on the held-out validation split; test acc is measured once, on "
                "those weights. Where a config has several seeds: mean ± std over seeds "
                "(diverged seeds are counted in the status column, not in the means). A name "
                "followed by (= other) is the identical config stored under another name."
            ),
            results_table(self.groups),
            *self.left_out(),
        ]

    def left_out(self) -> list[Block]:
        if not self.stale:
            return []
        runs = sum(len(g.members) for g in self.stale)  # finished or diverged
        names = ", ".join(f"{g.name} (config {g.row['config_key'][:8]})" for g in self.stale)
        return [
            Paragraph(
                f"Left out of this report's tables: {runs} run(s) of {len(self.stale)} config(s) "
                f"that are not suite `{self.suite}`'s as it is now (an earlier version of the "
                f"suite, or a grid with overrides): {names}. They are in the table of all runs; "
                "`mnistlab results --suite` lists them."
            )
        ]

    def best(self) -> list[Block]:
        return [Heading(2, "Best config"), *best_block(ranked(self.groups)[0])]

    def top(self) -> list[Block]:
        k = min(self.top_k, len(ranked(self.groups)))
        return [
            Heading(2, f"Top {k} configs"),
            Paragraph(
                "In the order of the full results table; a config stored under a second name "
                "(= other) is listed once."
            ),
            topk_table(self.groups, k),
        ]

    def curves(self) -> list[Block]:
        top = ranked(self.groups)[: self.top_k]
        metrics: dict[str, list[plots.Curve]] = {}
        for key in ("val_acc", "val_loss", "train_acc", "train_loss"):
            metrics[key] = [
                curve
                for rank, group in enumerate(top, 1)
                if (curve := _mean_curve(group, key, f"{rank}. {group.label()}")) is not None
            ]
        title = f"Learning curves of the top {len(top)} configs — suite {self.suite}"
        plots.learning_curves(metrics, self.image("curves.png"), title)
        return [
            Heading(2, f"Learning curves (top {len(top)})"),
            Paragraph(
                "Per epoch, mean over the finished seeds of each config (shaded: ± 1 std where "
                "there are several seeds). Loss axes are logarithmic. Accuracy axes are labelled "
                "in accuracy but scaled by the log of the error (100 − acc), so 99 → 99.5% takes "
                "as much room as 90 → 95%: small differences near the top stay visible."
            ),
            Image(f"{IMAGES}/curves.png", "learning curves of the top configs"),
        ]

    def diagnostics(self) -> list[Block]:
        from mnistlab.data import load_mnist  # the data only when a report needs it

        group = ranked(self.groups)[0]
        run = best_run(group)
        blocks: list[Block] = [Heading(2, "Test-set diagnostics of the best run")]
        run_dir = resolve_run_dir(run.run_dir, self.store_url)
        try:
            if run_dir is None:
                raise ReportError(f"run directory {run.run_dir or '(none)'} not found")
            data = load_mnist(self.data_dir, download=self.download)
            predictions = predict_test(run_dir, data, self.device)
        except MnistlabError as error:
            blocks.append(Paragraph(f"Skipped for `{group.name}` seed {run.seed}: {error}"))
            return blocks
        stored = run.summary.get("test_acc")
        agree = stored is not None and abs(stored - predictions.accuracy) < 0.015
        blocks.append(
            Paragraph(
                f"Run: `{group.name}` seed {run.seed} (the best seed of the best config, chosen "
                f"on validation), weights of epoch {predictions.checkpoint_epoch} from "
                f"`{run_dir / 'best.pt'}`, evaluated on the 10,000 official test images on "
                f"{describe_device(self.device)}. Test accuracy recomputed here: "
                f"**{predictions.accuracy:.2f}%** (stored: "
                f"{'–' if stored is None else f'{stored:.2f}%'}"
                f"{'' if agree else ' — differs: different device or numerics'})."
            )
        )
        matrix = predictions.confusion()
        plots.confusion_matrix_plot(
            matrix,
            self.image("confusion.png"),
            f"Confusion matrix, 10,000 test images\n{group.name} seed {run.seed} "
            f"(test acc {predictions.accuracy:.2f}%)",
        )
        wrong = int((predictions.labels != predictions.predicted).sum())
        picked = predictions.mistakes(MISTAKES_SHOWN)
        plots.misclassified_grid(
            pick_test_images(data, picked),
            predictions.labels[picked],
            predictions.predicted[picked],
            predictions.confidence[picked],
            self.image("misclassified.png"),
            f"The {len(picked)} most confident of {wrong} mistakes on the test set "
            f"({group.name} seed {run.seed})",
        )
        pairs = _top_confusions(matrix, 5)
        blocks += [
            Image(f"{IMAGES}/confusion.png", "confusion matrix on the test set"),
            Paragraph(
                "Most frequent mistakes (true → predicted: count): "
                + (", ".join(f"{t} → {p}: {n}" for t, p, n in pairs) or "none")
                + "."
            ),
            Image(f"{IMAGES}/misclassified.png", "misclassified test digits"),
        ]
        return blocks

    def constraints(self) -> list[Block]:
        budget = self.budget
        rows: list[tuple[ConfigGroup, dict[str, Check]]] = []
        for group in self.groups:
            card = self.card_of(group)
            if card is None:
                continue
            rows.append((group, checks(group, card, budget)))
        met = [g.label() for g, result in rows if all(c.ok for c in result.values())]
        return [
            Heading(2, "Constraint verification"),
            Paragraph(
                f"Constraints: < {budget.max_params:,} params, ≤ {budget.max_epochs} epochs, "
                f"≥ {budget.target:g}% on held-out validation data (from {budget.source}). BN, "
                "dropout and GAP are read from the model built from each stored config. "
                "**Consistent** is seed 001's criterion: the last 3 epochs' val accuracy all reach "
                "the target, for every seed."
            ),
            checklist_table(rows, budget),
            Paragraph(
                f"All constraints met by: {', '.join(f'`{m}`' for m in met)}."
                if met
                else "No config meets every constraint."
            ),
        ]

    def model_cards(self) -> list[Block]:
        blocks: list[Block] = [
            Heading(2, "Model cards"),
            Paragraph(
                "One per distinct architecture in the suite, computed from the model itself "
                "(one traced forward pass of a 1×28×28 input: modules and functional ops "
                "alike). Output shape is C×H×W per image; MACs are multiply-accumulates of "
                "convs and linear layers per image (BN folds into the conv at inference); the "
                "receptive field is the theoretical one (it can exceed the 28×28 input), and "
                "after the global pool a row shows the field of the map it pooled. Activation "
                "layers are omitted: no params, same shape."
            ),
        ]
        for arch in self.architectures.values():
            card = arch.card
            rows = layer_rows(card)
            rows.append(
                [
                    "",
                    "**total**",
                    "",
                    "",
                    f"**{card.params:,}**",
                    "",
                    f"**{format_macs(card.macs)}**",
                ]
            )
            blocks += [
                Heading(3, arch.title),
                Paragraph(
                    f"Used by: {', '.join(f'`{c}`' for c in arch.configs)}. "
                    f"**{card.params:,} params = {card.params_kb:.1f} KB** as float32 "
                    f"({card.state_kb:.1f} KB state dict, buffers included); "
                    f"**{format_macs(card.macs)} MACs** per image."
                ),
                Table(
                    list(LAYER_COLUMNS),
                    rows,
                    ["r", "l", "l", "l", "r", "l", "r"],
                ),
            ]
        return blocks

    def timing(self) -> list[Block]:
        train_rows = []
        for group in self.groups:
            timing = train_timing(group.members)
            runs = timing.runs
            reached = f"{timing.reached}/{runs}" if runs else "–"
            train_rows.append(
                [
                    group.label(),
                    ", ".join(timing.devices),
                    timing.seconds_per_epoch.format(1),
                    timing.total_seconds.format(1),
                    timing.epochs_to_reach.format(1) if timing.reached else "not reached",
                    timing.seconds_to_reach.format(1) if timing.reached else "not reached",
                    reached,
                ]
            )
        infer_rows = []
        method = "–"
        for arch in self.architectures.values():
            result = inference_timing(arch.module, self.device)
            method = result.memory_method
            peak = "–" if result.peak_mb_b1024 is None else f"{result.peak_mb_b1024:.1f} MB"
            infer_rows.append(
                [
                    arch.title,
                    result.device,
                    f"{result.ms_per_image_b1:.3f}{self._threads(result.threads_b1)}",
                    f"{result.ms_per_image_b1024 * 1000:.1f}{self._threads(result.threads_b1024)}",
                    f"{1000 / result.ms_per_image_b1024:,.0f}",
                    peak,
                ]
            )
        load = load_average()
        return [
            Heading(2, "Timing"),
            Heading(3, "Training (from the stored runs)"),
            Paragraph(
                f"Per config, mean ± std over finished seeds, on the device each run names. "
                f"Epochs and seconds to reach {REACH_ACC:g}% val accuracy count training time "
                "(including each epoch's validation) until the first epoch at or above it, over "
                "the seeds that reached it."
            ),
            Table(
                [
                    "config",
                    "trained on",
                    "s/epoch",
                    "total s",
                    f"epochs to {REACH_ACC:g}% val",
                    f"s to {REACH_ACC:g}% val",
                    "seeds reaching",
                ],
                train_rows,
                ["l", "l", "r", "r", "r", "r", "r"],
            ),
            Heading(3, "Inference (measured by this report)"),
            Paragraph(
                f"Measured on {describe_device(self.device)} while writing this report"
                f"{f' ({load}; other load adds noise)' if load else ''}: median time per "
                "forward pass divided by the batch size, after warm-up; batch 1 on one CPU "
                "thread (a single request's latency), batch 1024 on all of them (throughput). "
                f"Peak memory: {method} during one batch-1024 forward pass. Peak resident "
                f"memory of the whole report process so far: {process_peak_rss_mb():.0f} MB."
            ),
            Table(
                [
                    "architecture",
                    "device",
                    "ms/image, batch 1",
                    "µs/image, batch 1024",
                    "images/s, batch 1024",
                    "peak memory, batch 1024",
                ],
                infer_rows,
                ["l", "l", "r", "r", "r", "r"],
            ),
        ]

    def _threads(self, count: int) -> str:
        if self.device.type != "cpu":
            return ""
        return f" ({count} thread{'' if count == 1 else 's'})"

    def pareto(self) -> list[Block]:
        points: list[plots.Point] = []
        for suite in self.store.suites():
            records = (
                self.records
                if suite == self.suite
                else self.store.records(self.store.study(suite, create=False))
            )
            for row in config_rows(records):
                test = row["test_acc"]
                if test.mean is None or not row["params"] or row["same_as"]:
                    continue
                points.append(
                    plots.Point(row["name"], int(row["params"]), test.mean, test.std or 0.0, suite)
                )
        blocks: list[Block] = [Heading(2, "Parameter budget: Pareto front")]
        if not points:
            return blocks + [Paragraph("No config in the store has a test accuracy yet.")]
        _, front = plots.pareto_plot(
            points,
            self.image("pareto.png"),
            self.budget.max_params,
            self.budget.target,
            f"Params vs test accuracy, all {len(points)} configs in the store",
        )
        blocks += [
            Paragraph(
                "Every config of every suite in the store: trainable parameters (log scale) "
                "against test accuracy, mean ± std over seeds (error bars; the accuracy axis is "
                "scaled by the log of the error, as in the learning curves). The Pareto front "
                "holds the configs that no config with as many or fewer params beats."
            ),
            Image(f"{IMAGES}/pareto.png", "params vs test accuracy"),
            Table(
                ["config (Pareto front)", "suite", "params", "test acc %"],
                [[p.label, p.group, f"{p.params:,}", _pm(p.mean, p.std)] for p in front],
                ["l", "l", "r", "r"],
            ),
        ]
        return blocks


def _pm(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}" if std else f"{mean:.2f}"


def _mean_curve(group: ConfigGroup, key: str, label: str) -> plots.Curve | None:
    """Mean (and std) over the finished seeds of one per-epoch metric."""
    by_epoch: dict[int, list[float]] = {}
    for record in group.finished:
        for row in record.epochs:
            value = row.get(key)
            if value is not None and np.isfinite(value):
                by_epoch.setdefault(int(row["epoch"]), []).append(float(value))
    if not by_epoch:
        return None
    epochs = sorted(by_epoch)
    stats = [stat(list(by_epoch[e])) for e in epochs]
    return plots.Curve(
        label,
        epochs,
        [s.mean or 0.0 for s in stats],
        [s.std or 0.0 for s in stats],
    )


def _top_confusions(matrix: np.ndarray, count: int) -> list[tuple[int, int, int]]:
    off = [(t, p, int(matrix[t, p])) for t in range(10) for p in range(10) if t != p]
    return sorted((x for x in off if x[2] > 0), key=lambda x: -x[2])[:count]
