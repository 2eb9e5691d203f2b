"""`opd reproduce`: run the paper's study end to end (see opd_core/study/ for the parts).

    opd reproduce --out DIR [--quick] [--seeds N] [--suites object] [--assets FOLDER] [--jobs N]
    opd reproduce --out DIR --quick --suites twin     (the dual-arm RoboTwin protocol: Table 3 and Figure 4)

Hook into the CLI with `add_reproduce_command(subparsers)` in `opd_core.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import json

from opd_core.config import ConfigError


def add_reproduce_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "reproduce",
        help="run the paper's study (all methods, forgetting, G ablation) and write summary, plots, report",
        description="Teacher and 1-demo student made once (cached in DIR/assets), then reverse KL (sampled and exact), "
        "forward KL, hard CE, GRPO, offline SFT and distill-then-GRPO from the same student with the same "
        "batch, plus the group-size ablation. Writes DIR/summary.json, DIR/report.md and DIR/plots/*.png. "
        "Running it again continues an interrupted study.",
    )
    parser.add_argument("--out", required=True, help="study folder (assets, runs, summary, report, plots)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the quick preset (minutes on a laptop CPU from cached or --assets checkpoints) instead of the full one",
    )
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default: the preset's; full: 3)")
    parser.add_argument(
        "--suites",
        default="object",
        help="comma-separated tabletop suites, or all (spatial,object,goal,long), or twin (the dual-arm suite: "
        "Table 3 and Figure 4, a study of its own); default: object",
    )
    parser.add_argument(
        "--assets",
        default=None,
        metavar="FOLDER",
        help="folder with finished base / teacher / student checkpoints or run folders to start "
        "from (e.g. runs, after the configs/ chain was trained with opd train)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="method runs at once, one process each, sharing the CPU cores (default 1)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--finished-only",
        action="store_true",
        help="train nothing: write the summary, report and plots of the seeds whose runs (per suite) have all "
        "ended so far, an interim look at a study that spans several sittings",
    )
    parser.set_defaults(handler=_cmd_reproduce)
    return parser


POST_TRAINING_SUITES = ("spatial", "object", "goal", "long")
DUAL_ARM_SUITES = ("twin",)
"""Suites of the dual-arm twin env (its own base, teacher and student; a study of its own)."""


def parse_suites(text: str) -> list[str]:
    """`--suites`: a comma-separated list (each once, in the order given) or `all`."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if names == ["all"]:
        return list(POST_TRAINING_SUITES)
    if not names:
        raise ConfigError("--suites", "no suite given")
    for name in names:
        if name not in (*POST_TRAINING_SUITES, *DUAL_ARM_SUITES):
            raise ConfigError(
                "--suites",
                f"{name!r} is not a post-training suite ({', '.join(POST_TRAINING_SUITES)}, or all; "
                f"dual-arm: {', '.join(DUAL_ARM_SUITES)})",
            )
    envs = {suite_env(name) for name in names}
    if len(envs) > 1:
        raise ConfigError(
            "--suites", "the dual-arm twin suite is a study of its own (another simulator): run it separately"
        )
    return list(dict.fromkeys(names))


def suite_env(suite: str) -> str:
    return "twin" if suite in DUAL_ARM_SUITES else "tabletop"


def _cmd_reproduce(args, run=None) -> int:
    """`run`: the study runner (default opd_core.study.run_study; the lab passes one that uses its queue)."""
    from opd_core.registry import task_catalog
    from opd_core.study import run_study
    from opd_core.study.presets import preset_for

    suites = parse_suites(args.suites)
    env = suite_env(suites[0])
    preset = preset_for(env, args.quick)
    if args.seeds is not None:
        if args.seeds < 1:
            raise ConfigError("--seeds", f"must be at least 1, got {args.seeds}")
        preset = preset.with_changes(seeds=args.seeds)
    if args.jobs < 1:
        raise ConfigError("--jobs", f"must be at least 1, got {args.jobs}")
    for suite in suites:
        task_catalog(env).suite_tasks(suite)
    options = dict(suites=suites, assets=args.assets, progress=not args.no_progress, finished_only=args.finished_only)
    if run is None:
        summary = run_study(args.out, preset, jobs=args.jobs, **options)
    else:
        summary = run(args.out, preset, **options)
    brief = {
        suite: {
            m: {
                "seen": r["final"]["seen_success"]["mean"],
                "unseen": r["final"]["unseen_success"]["mean"],
                "steps_to_90_eval": r["steps_to_90"]["eval"]["mean"],
            }
            for m, r in result["methods"].items()
        }
        for suite, result in summary["results"].items()
    }
    print(json.dumps({"out": args.out, "wall_seconds": round(summary["wall_seconds"], 1), "final": brief}, indent=1))
    return 0
