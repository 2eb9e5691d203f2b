"""The `opd` command's core subcommands: train, eval, demos, bench (the worker package adds worker/launch).

Errors a researcher can fix (bad config, missing checkpoint, missing demos) print one clear line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from opd_core.config import ConfigError, RunConfig
from opd_core.errors import OpdError
from opd_core.reproduce import add_reproduce_command


def build_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(prog="opd", description="On-policy distillation lab for VLA policies")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="run a config (any pipeline) writing to its out_dir")
    train.add_argument("config", help="YAML run config")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field (YAML value), repeatable",
    )
    train.add_argument("--out", help="override out_dir")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in out_dir")
    train.set_defaults(handler=_cmd_train)

    ev = sub.add_parser(
        "eval",
        help="seen/unseen success of a checkpoint on the fixed initial states",
        description="Per-task success from the fixed initial states. On LIBERO this is the standard "
        "protocol: 10 no-op steps, then at most 220/280/300/520 steps (spatial/object/"
        "goal/10), 50 initial states per task by default.",
    )
    ev.add_argument("checkpoint")
    ev.add_argument("--env", default=None, help="simulator (default: the checkpoint's run config)")
    ev.add_argument("--suite", default=None)
    ev.add_argument("--tasks", default=None, help="comma-separated task names (default: the suite)")
    ev.add_argument("--unseen", default=None, help="comma-separated held-out task names")
    ev.add_argument(
        "--init-states",
        type=int,
        default=None,
        help="initial states per task (default: 10 on tabletop, 50 on LIBERO and ALOHA)",
    )
    ev.add_argument("--num-envs", type=int, default=0, help="LIBERO: episodes stepped at once (default 10)")
    ev.add_argument(
        "--workers",
        type=int,
        default=0,
        help="LIBERO: environment processes (default: OPD_LIBERO_WORKERS or the CPU count)",
    )
    ev.add_argument("--temperature", type=float, default=0.0)
    ev.add_argument("--videos", type=int, default=2, help="tasks to film (init state 0)")
    ev.add_argument("--out", default=None, help="folder for videos and eval.json")
    ev.set_defaults(handler=_cmd_eval)

    demos = sub.add_parser("demos", help="generate expert demonstrations (LIBERO HDF5 layout)")
    demos.add_argument("--env", default="tabletop", help="tabletop or twin (built in), or aloha (the extra)")
    demos.add_argument("--suite", default="object")
    demos.add_argument("--tasks", default=None, help="comma-separated task names (default: the suite)")
    demos.add_argument("--num", type=int, default=50, help="demos per task")
    demos.add_argument(
        "--noise", type=float, default=0.3, help="DART execution noise (std of xyz actions; aloha: of arm joints)"
    )
    demos.add_argument("--seed", type=int, default=0)
    demos.add_argument("--out", required=True)
    demos.set_defaults(handler=_cmd_demos)

    bench = sub.add_parser("bench", help="print benchmark figures as JSON")
    bench.add_argument("what", choices=["sim", "step"])
    bench.add_argument(
        "--batch",
        type=int,
        default=None,
        help="sim: environments (default 64); step: instructions B (default 8, with G=8)",
    )
    bench.add_argument("--steps", type=int, default=3, help="step: measured training steps")
    bench.add_argument(
        "--env",
        default="tabletop",
        choices=("tabletop", "twin"),
        help="the built-in simulator to measure (LIBERO: bench/bench_libero.py)",
    )
    bench.set_defaults(handler=_cmd_bench)

    add_reproduce_command(sub)
    return parser, sub


def main(argv: list[str] | None = None) -> int:
    parser, _ = build_parser()
    return run_command(parser, argv)


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ConfigError, OpdError) as exc:
        print(f"opd: error: {exc}", file=sys.stderr)
        return 2


def load_config_with_overrides(path: str, overrides: list[str], out: str | None = None) -> RunConfig:
    data = RunConfig.load(path).to_dict()
    for item in overrides:
        if "=" not in item:
            raise ConfigError("<--set>", f"expected FIELD=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        data[key.strip()] = yaml.safe_load(value)
    if out:
        data["out_dir"] = out
    return RunConfig.from_dict(data).validate()


def _cmd_train(args) -> int:
    from opd_core.sinks import LocalDirSink
    from opd_core.train import train

    config = load_config_with_overrides(args.config, args.set, args.out)
    sink = LocalDirSink(config.out_dir)
    try:
        result = train(config, sink, resume=args.resume, progress_bar=True)
    finally:
        sink.close()
    print(
        json.dumps(
            {
                "status": result.status,
                "step": result.step,
                "out_dir": str(result.out_dir),
                "last_eval": result.last_eval,
            },
            indent=1,
        )
    )
    return 0


def _cmd_eval(args) -> int:
    from opd_core.checkpoint import load_policy, read_meta
    from opd_core.evaluate import evaluate
    from opd_core.registry import env_spec, task_catalog

    meta = read_meta(args.checkpoint)
    run_config = RunConfig.from_dict(meta.get("run_config") or {})
    env = args.env or run_config.env
    suite = args.suite or run_config.suite
    tasks = _split(args.tasks) or (run_config.tasks if not args.suite else []) or task_catalog(env).suite_tasks(suite)
    unseen = _split(args.unseen) if args.unseen is not None else run_config.unseen_tasks
    out = Path(args.out or Path(args.checkpoint) / "eval")
    policy = load_policy(args.checkpoint)
    spec = env_spec(env)
    if env == "libero":
        result = _evaluate_libero(args, policy, tasks, unseen, run_config, out)
    else:
        result = evaluate(
            policy,
            env,
            tasks,
            unseen,
            init_states=args.init_states or spec.eval_init_states,
            temperature=args.temperature,
            image_size=run_config.image_size,
            video_tasks=tasks[: args.videos],
            video_dir=out,
            run_dir=out,
        )
    out.mkdir(parents=True, exist_ok=True)
    report = {"checkpoint": str(args.checkpoint), "env": env, **result.summary(), "videos": result.videos}
    if env == "libero":
        actions = "greedy actions" if args.temperature == 0 else f"actions sampled at temperature {args.temperature}"
        report["protocol"] = (
            f"LIBERO standard: fixed initial states 0..n-1, 10 no-op steps, {actions}, "
            "at most 220/280/300/520 steps for spatial/object/goal/10"
        )
    elif spec.protocol_note:
        report["protocol"] = spec.protocol_note
    (out / "eval.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


def _evaluate_libero(args, policy, tasks: list[str], unseen: list[str], run_config: RunConfig, out: Path):
    from tqdm import tqdm

    from opd_core.envs.libero.protocol import evaluate_run
    from opd_core.envs.libero.tasks import NUM_FIXED_INIT_STATES

    init_states = args.init_states or NUM_FIXED_INIT_STATES
    if not 1 <= init_states <= NUM_FIXED_INIT_STATES:
        raise ConfigError(
            "--init-states", f"LIBERO has {NUM_FIXED_INIT_STATES} fixed initial states per task, got {init_states}"
        )
    total = len(dict.fromkeys([*tasks, *unseen])) * init_states
    with tqdm(total=total, desc="LIBERO protocol", unit="episode") as bar:
        return evaluate_run(
            policy,
            tasks,
            unseen,
            init_states=init_states,
            temperature=args.temperature,
            image_size=run_config.image_size,
            max_episode_steps=0,
            video_tasks=tasks[: args.videos],
            video_dir=out,
            run_dir=out,
            num_envs=args.num_envs,
            num_workers=args.workers,
            progress=bar.update,
        )


def _cmd_demos(args) -> int:
    from tqdm import tqdm

    from opd_core.demos import NOISY_DIMS, generate_demos
    from opd_core.registry import task_catalog

    if args.env == "aloha":  # the extra's expert runs in its worker processes
        from opd_core.envs.aloha.demos import generate_expert_demos as generate_demos
    elif args.env not in NOISY_DIMS:
        raise ConfigError(
            "env", f"demos are generated on the built-in simulators {sorted(NOISY_DIMS)}, not {args.env!r}"
        )
    catalog = task_catalog(args.env)
    try:
        tasks = _split(args.tasks) or catalog.suite_tasks(args.suite)
        for task in tasks:
            catalog.instruction(task)
    except KeyError as exc:
        raise ConfigError("tasks" if args.tasks else "suite", str(exc).strip("'\"")) from exc
    with tqdm(total=len(tasks) * args.num, desc="demos", unit="episode") as bar:
        options = {} if args.env == "aloha" else {"env": args.env}
        counts = generate_demos(
            tasks, args.num, args.out, noise=args.noise, seed=args.seed, progress=bar.update, **options
        )
    print(json.dumps({"out": args.out, "episodes": counts}, indent=1))
    return 0


def _cmd_bench(args) -> int:
    from opd_core import bench

    if args.what == "sim":
        figures = bench.simulator(args.batch or 64, env=args.env)
    elif args.env == "tabletop":
        figures = bench.training_step(args.batch or 8, args.steps)
    else:
        figures = bench.training_step(args.batch or 8, args.steps, env=args.env, suite=bench.SIM_SUITES[args.env])
    print(json.dumps(figures, indent=1))
    return 0


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


if __name__ == "__main__":
    sys.exit(main())
