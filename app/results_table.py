"""The paper's Table 2 from the store: success (%) per suite per method, mean ± spread over seeds.

Rows: the teacher (reference), the student before training (step-0 evaluation), then one row per method,
where runs that differ only by seed or by their suite's own settings (tasks, checkpoints, demos) share a row.
A cell holds the final seen-task success of every run of that row on that suite; spread is the sample standard
deviation over those runs (0 for one run). Avg. is the mean of the row's suite means, shown only when the row
has every suite of the table (the paper's Avg. is over all four suites).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.references import final_success, initial_success, teacher_success
from app.run_groups import IDENTITY_FIELDS, PER_SUITE_FIELDS, group_runs

SUITE_ORDER = ("spatial", "object", "goal", "long")
TEACHER_LABEL = "Teacher (reference)"
STUDENT_INIT_LABEL = "Student init"


@dataclass(frozen=True)
class Cell:
    mean: float
    spread: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Cell:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), spread, len(values))

    def text(self) -> str:
        return f"{100 * self.mean:.1f} ± {100 * self.spread:.1f}" if self.n > 1 else f"{100 * self.mean:.1f}"


@dataclass(frozen=True)
class ResultsRow:
    label: str
    kind: str
    """reference | init | method"""
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass(frozen=True)
class ResultsTable:
    suites: list[str]
    rows: list[ResultsRow]

    def average(self, row: ResultsRow) -> float | None:
        if not self.suites or any(suite not in row.cells for suite in self.suites):
            return None
        return statistics.fmean(row.cells[suite].mean for suite in self.suites)

    def display_rows(self) -> list[dict[str, str]]:
        """Text cells for a table widget: 'mean ± std' in percent, empty where a row has no runs."""
        rows = []
        for row in self.rows:
            cells = {suite: row.cells[suite].text() if suite in row.cells else "" for suite in self.suites}
            average = self.average(row)
            rows.append({"method": row.label, **cells, "avg.": "" if average is None else f"{100 * average:.1f}"})
        return rows

    def to_markdown(self) -> str:
        header = ["Method", *[suite.capitalize() for suite in self.suites], "Avg."]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for display in self.display_rows():
            values = [display["method"], *[display[s] or "–" for s in self.suites], display["avg."] or "–"]
            lines.append("| " + " | ".join(values) + " |")
        return (
            "\n".join(lines) + "\n\nSuccess rate (%) on seen tasks at the final checkpoint; mean ± standard "
            "deviation over seeds where a method ran more than once.\n"
        )

    def to_latex(self) -> str:
        """A booktabs table (\\usepackage{booktabs}) with the paper's layout: the references above a rule, then
        the methods; 'mean $\\pm$ std' in percent."""
        columns = "l" + "c" * (len(self.suites) + 1)
        header = " & ".join(["Method", *[latex_escape(s.capitalize()) for s in self.suites], "Avg."])
        lines = [
            "\\begin{table}[t]",
            "\\centering",
            f"\\begin{{tabular}}{{{columns}}}",
            "\\toprule",
            header + " \\\\",
            "\\midrule",
        ]
        previous_kind = None
        for row, display in zip(self.rows, self.display_rows()):
            if previous_kind in ("reference", "init") and row.kind == "method":
                lines.append("\\midrule")
            previous_kind = row.kind
            cells = [display[s] or "--" for s in self.suites] + [display["avg."] or "--"]
            cells = [latex_escape(c).replace("±", "$\\pm$") for c in cells]
            lines.append(" & ".join([latex_escape(display["method"]), *cells]) + " \\\\")
        lines += [
            "\\bottomrule",
            "\\end{tabular}",
            "\\caption{Success rate (\\%) on seen tasks at the final checkpoint; mean $\\pm$ standard "
            "deviation over seeds where a method ran more than once.}",
            "\\end{table}",
        ]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """One line per row; per suite the mean and spread in percent and the number of runs."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            ["method", "kind", *[f"{s}_{part}" for s in self.suites for part in ("mean", "std", "n")], "avg"]
        )
        for row in self.rows:
            cells = []
            for suite in self.suites:
                cell = row.cells.get(suite)
                cells += ["", "", 0] if cell is None else [_percent(cell.mean), _percent(cell.spread), cell.n]
            average = self.average(row)
            writer.writerow([row.label, row.kind, *cells, "" if average is None else _percent(average)])
        return out.getvalue()


_LATEX_SPECIAL = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Text as LaTeX prints it literally (a run label may hold _, #, % or &)."""
    return "".join(_LATEX_SPECIAL.get(char, char) for char in str(text))


def _percent(value: float) -> str:
    return f"{100 * value:.2f}"


def results_table(
    runs: Sequence[Any],
    checkpoints_by_run: Mapping[int, Sequence[Any]],
    summaries: Mapping[str, Mapping[str, Any]],
    artifact_path: Callable[[str], Any] = str,
) -> ResultsTable:
    """`runs`: the runs to tabulate (the page passes finished ones); `summaries`: absolute checkpoint path ->
    summary, to find the teachers' own results; `artifact_path` resolves data-directory-relative paths."""
    suites = _suite_order([run.config.get("suite", "") for run in runs])
    teacher = _per_suite(
        runs, lambda run: teacher_success(run.config, summaries, artifact_path), once_per="teacher_checkpoint"
    )
    init = _per_suite(
        runs, lambda run: initial_success(checkpoints_by_run.get(run.id, ())), once_per="student_checkpoint"
    )
    rows = []
    if teacher:
        rows.append(ResultsRow(TEACHER_LABEL, "reference", teacher))
    if init:
        rows.append(ResultsRow(STUDENT_INIT_LABEL, "init", init))
    for group in group_runs(runs, ignore=IDENTITY_FIELDS | PER_SUITE_FIELDS):
        members = [run for run in runs if run.id in group.run_ids]
        cells = _per_suite(members, lambda run: final_success(checkpoints_by_run.get(run.id, ())))
        if cells:
            rows.append(ResultsRow(group.label, "method", cells))
    return ResultsTable(suites, rows)


def _per_suite(runs: Sequence[Any], value_of, once_per: str | None = None) -> dict[str, Cell]:
    """Each suite's cell over the runs' values. With `once_per` (a checkpoint field) a checkpoint counts once
    per suite however many runs used it: a teacher or a student is one measurement, not one per run (runs
    without that checkpoint have no teacher, or start from scratch rather than from a student)."""
    values: dict[str, list[float]] = {}
    counted: set[tuple[str, str]] = set()
    for run in runs:
        suite = run.config.get("suite", "")
        if once_per is not None:
            identity = (suite, run.config.get(once_per, ""))
            if not identity[1] or identity in counted:
                continue
        value = value_of(run)
        if value is not None and math.isfinite(value):
            values.setdefault(suite, []).append(value)
            if once_per is not None:
                counted.add(identity)
    return {suite: Cell.of(found) for suite, found in values.items()}


def _suite_order(suites: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(suites))
    return [s for s in SUITE_ORDER if s in present] + [s for s in present if s not in SUITE_ORDER]


# ---- a study's Table 2 (`opd reproduce --queue`) ----------------------------------------------------------------
HANDOFF = "opd_then_grpo"
"""Distill then GRPO: its runs start from the distilled checkpoint, not from the student."""
STUDY_TAG, METHOD_TAG, ROW_STEP_TAG = "study:", "method:", "table2-step:"
"""The tags worker.study_queue gives a study's runs: which study, which method, and the step whose checkpoint is
the method's Table 2 cell (an extended run goes on past it)."""


def tag_value(run: Any, prefix: str) -> str | None:
    return next((tag.removeprefix(prefix) for tag in run.tags if tag.startswith(prefix)), None)


def studies(runs: Sequence[Any]) -> list[str]:
    """The studies among `runs`, newest first (by their newest run)."""
    newest: dict[str, int] = {}
    for run in runs:
        name = tag_value(run, STUDY_TAG)
        if name is not None:
            newest[name] = max(newest.get(name, 0), run.id)
    return sorted(newest, key=newest.get, reverse=True)


def study_table(
    runs: Sequence[Any],
    checkpoints_by_run: Mapping[int, Sequence[Any]],
    summaries: Mapping[str, Mapping[str, Any]],
    artifact_path: Callable[[str], Any] = str,
) -> ResultsTable:
    """Table 2 of one study's runs laid out as its report.md does: the teacher and the student init (measured
    once per suite), then distill, distill then GRPO, GRPO and offline SFT; a column per suite, each cell the seen
    success at the method's Table 2 step, mean ± std over seeds. Methods outside Table 2 are left out."""
    from opd_core.study.report import TABLE_2_ROWS

    suites = _suite_order([run.config.get("suite", "") for run in runs])
    labels = dict(TABLE_2_ROWS)
    rows = []
    teacher = _per_suite(
        runs, lambda run: teacher_success(run.config, summaries, artifact_path), once_per="teacher_checkpoint"
    )
    from_student = [run for run in runs if tag_value(run, METHOD_TAG) != HANDOFF]  # it starts from a distilled one
    init = _per_suite(
        from_student, lambda run: initial_success(checkpoints_by_run.get(run.id, ())), once_per="student_checkpoint"
    )
    if teacher:
        rows.append(ResultsRow(labels["teacher"], "reference", teacher))
    if init:
        rows.append(ResultsRow(labels["student_init"], "init", init))
    for method, label in TABLE_2_ROWS[2:]:
        members = [run for run in runs if tag_value(run, METHOD_TAG) == method]
        cells = _per_suite(members, lambda run: _success_at_row_step(run, checkpoints_by_run.get(run.id, ())))
        if cells:
            rows.append(ResultsRow(label, "method", cells))
    return ResultsTable(suites, rows)


def _success_at_row_step(run: Any, checkpoints: Sequence[Any]) -> float | None:
    step = tag_value(run, ROW_STEP_TAG)
    if step is None or not step.isdigit():
        return final_success(checkpoints)
    return (
        final_success([c for c in checkpoints if c.step <= int(step)])
        if any(c.step == int(step) for c in checkpoints)
        else None
    )
