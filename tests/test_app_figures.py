"""Plotly figures: curves with bands and a teacher line, and the forgetting scatter (paper Fig. 3)."""

import numpy as np

from app.figures import Reference, curves_figure, forgetting_figure, forgetting_points
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
    # band: upper edge, lower edge filled to it, then the mean; a single seed only has its line
    assert names == [
        ("OPD (3 seeds)", False, None),
        ("OPD (3 seeds)", False, "tonexty"),
        ("OPD (3 seeds)", None, None),
        ("GRPO", None, None),
    ]
    assert len(figure.layout.shapes) == 1 and figure.layout.shapes[0].y0 == 0.9
    assert "teacher" in figure.layout.annotations[0].text
    assert tuple(figure.layout.yaxis.range) == (-0.03, 1.03)
    assert figure.layout.xaxis.title.text == "training step"


def test_curves_figure_leaves_non_success_axes_free():
    figure = curves_figure("train/entropy", [("a", _band(1))], "environment steps")
    assert figure.layout.yaxis.range is None


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
