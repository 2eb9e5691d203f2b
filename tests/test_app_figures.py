"""Plotly figures: curves with bands and a teacher line, and the forgetting scatter (paper Fig. 3)."""

import numpy as np

from app.figures import (
    Line,
    Reference,
    axis_title,
    curves_figure,
    dims_figure,
    forgetting_figure,
    forgetting_points,
    legend_rows,
    metric_title,
)
from app.series import Band, Curve, fold_seeds
from test_app_fakes import Checkpoint, summary


def _band(seeds: int) -> Band:
    steps = np.arange(1, 6)
    return fold_seeds([Curve(steps, steps.astype(float), steps / 10 + 0.01 * s) for s in range(seeds)])


def test_curves_figure_draws_a_band_only_for_several_seeds_and_the_teacher_line():
    figure = curves_figure(
        "train/success", [("OPD (3 seeds)", _band(3)), ("GRPO", _band(1))], "training step", [Reference("teacher", 0.9)]
    )
    names = [(t.name, t.showlegend, t.fill) for t in figure.data]
    # band: one closed polygon, then the mean; a single seed only has its line (in the legend even alone)
    assert names == [("OPD (3 seeds)", False, "toself"), ("OPD (3 seeds)", True, None), ("GRPO", True, None)]
    band = figure.data[0]
    # upper edge (the highest seed, +0.02) forwards, then the lower edge (the lowest seed) backwards
    assert len(band.x) == 10 and np.allclose(band.y, [0.12, 0.22, 0.32, 0.42, 0.52, 0.5, 0.4, 0.3, 0.2, 0.1])
    assert len(figure.layout.shapes) == 1 and figure.layout.shapes[0].y0 == 0.9
    assert "teacher" in figure.layout.annotations[0].text
    assert tuple(figure.layout.yaxis.range) == (-0.03, 1.03)
    assert figure.layout.xaxis.title.text == "training step"


def test_curves_figure_leaves_non_success_axes_free():
    figure = curves_figure("train/entropy", [("a", _band(1))], "environment steps")
    assert figure.layout.yaxis.range is None


def test_titles_and_axes_are_human_with_the_raw_key_kept_as_subtitle():
    assert metric_title("train/reverse_kl") == "Reverse KL (train)"
    assert metric_title("eval/seen_success") == "Seen-task success (eval)"
    assert metric_title("train/entropy/dx") == "Entropy · dx (train)"
    assert metric_title("time/env_steps") == "Environment steps (time)"
    assert metric_title("loss") == "Loss"
    assert axis_title("train/grad_norm") == "Gradient norm"
    figure = curves_figure("train/reverse_kl", [("#1 a run", _band(1))], "training step")
    assert figure.layout.title.text == "Reverse KL (train)"
    assert figure.layout.title.subtitle.text == "train/reverse_kl"
    assert figure.layout.yaxis.title.text == "Reverse KL"
    assert figure.layout.showlegend is True and figure.data[0].showlegend is True  # also for a single run


def test_standard_error_band_and_raw_curve_behind_the_smoothed_one():
    band = _band(3)
    raw = _band(3)
    figure = curves_figure(
        "train/loss", [Line("A", band, raw, hover="objective=hard_ce")], "training step", spread="sem"
    )
    polygon, faint, mean = figure.data
    expected_sem = np.std([0.0, 0.01, 0.02], ddof=1) / np.sqrt(3)
    assert np.isclose(polygon.y[0] - band.mean[0], expected_sem)
    assert faint.opacity == 0.25 and faint.hoverinfo == "skip" and faint.showlegend is False
    assert "objective=hard_ce" in mean.hovertemplate and "step %{customdata[0]}" in mean.hovertemplate
    no_band = curves_figure("train/loss", [Line("A", band)], "training step", spread="none")
    assert [t.fill for t in no_band.data] == [None]


def test_long_legends_go_below_and_grow_the_chart_instead_of_squashing_it():
    labels = [f"OPD (reverse KL) · G={g} · lr=0.000{g}" for g in range(8)]
    figure_short = curves_figure("train/success", [("a", _band(1))], "training step")
    figure_long = curves_figure(
        "train/success",
        [(label, _band(1)) for label in labels],
        "training step",
        legend_title="seeds folded · differs: G, lr",
    )
    assert legend_rows(labels) > 2
    assert (
        figure_long.layout.height - figure_short.layout.height
        == figure_long.layout.margin.b - figure_short.layout.margin.b
    )  # same plot area, more room below
    assert figure_long.layout.legend.orientation == "h" and figure_long.layout.legend.y < 0
    assert all(len(t.name) <= 48 for t in figure_long.data)


def test_dims_figure_has_one_panel_per_dimension_and_one_legend_entry_per_line():
    panels = {dim: [Line("A", _band(2)), Line("B", _band(1))] for dim in ("dx", "dy", "gripper")}
    figure = dims_figure("reverse_kl", panels, "training step")
    assert [a.text for a in figure.layout.annotations] == ["dx", "dy", "gripper"]
    assert sum(1 for t in figure.data if t.showlegend) == 2
    assert "Reverse KL" in figure.layout.title.text


def test_forgetting_points_in_checkpoint_order_per_unseen_task():
    checkpoints = {
        7: [
            Checkpoint(7, 10, "c", summary(0.6, {"u/a": 0.3, "u/b": 0.1})),
            Checkpoint(7, 0, "c", summary(0.2, {"u/a": 0.5, "u/b": 0.4})),
            Checkpoint(7, 20, "c", summary(float("nan"), {"u/a": 0.1})),
        ]
    }
    points = forgetting_points(checkpoints, ["u/a", "u/b"])
    assert [(p.step, p.task, p.seen, p.unseen) for p in points] == [
        (0, "u/a", 0.2, 0.5),
        (0, "u/b", 0.2, 0.4),
        (10, "u/a", 0.6, 0.3),
        (10, "u/b", 0.6, 0.1),
    ]


def test_forgetting_figure_has_one_panel_per_task_and_one_line_per_run():
    checkpoints = {
        run: [Checkpoint(run, s, "c", summary(s / 10, {"u/a": 1 - s / 10, "u/b": 0.5})) for s in (0, 5, 10)]
        for run in (1, 2, 3)
    }
    points = forgetting_points(checkpoints, ["u/a", "u/b"])
    figure = forgetting_figure(points, ["u/a", "u/b"], {1: "SFT", 2: "OPD", 3: "OPD"})
    assert [a.text for a in figure.layout.annotations] == ["a", "b"]
    assert len(figure.data) == 6  # 3 runs x 2 panels
    assert [t.showlegend for t in figure.data] == [True, True, False, False, False, False]
    first = figure.data[0]
    assert list(first.x) == [0.0, 0.5, 1.0] and list(first.y) == [1.0, 0.5, 0.0]
    assert first.marker.symbol[0] == "circle-open" and first.marker.symbol[1] == "arrow"
    # seeds of one method share a colour
    assert figure.data[1].line.color == figure.data[2].line.color != first.line.color
