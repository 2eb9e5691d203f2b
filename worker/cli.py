"""The `opd` command: opd_core's subcommands (train, eval, demos, bench) plus the lab's (worker, launch, sweep,
runs, cancel, resume). Errors a researcher can fix print one line and exit 2, like opd_core's."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from opd_core.cli import build_parser, load_config_with_overrides
from opd_core.config import ConfigError
from opd_core.errors import OpdError
from worker.settings import INPUT_PATH_FIELDS, QUEUES


def main(argv: list[str] | None = None) -> int:
    parser, subparsers = build_parser()
    add_lab_commands(subparsers)
    args = parser.parse_args(argv)
    from worker.api import QueueUnavailable, RunNotFound, RunStateError, StoreUnavailable

    try:
        return int(args.handler(args) or 0)
    except (ConfigError, OpdError, StoreUnavailable, QueueUnavailable, RunNotFound, RunStateError) as exc:
        print(f"opd: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `opd runs | head`: the reader left; stop quietly, as a killed-by-SIGPIPE tool does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own final flush of stdout must not raise again
        return 128 + 13


def add_lab_commands(subparsers: argparse._SubParsersAction) -> None:
    _add_queue_to_reproduce(subparsers.choices["reproduce"])
    worker = subparsers.add_parser("worker", help="start a worker that runs queued runs (Celery)")
    worker.add_argument(
        "-Q",
        "--queues",
        default=["cpu"],
        type=_queue_list,
        help=f"comma-separated queues to consume ({', '.join(QUEUES)}; default cpu)",
    )
    worker.add_argument(
        "-c",
        "--concurrency",
        type=_positive_int,
        default=None,
        help="runs at the same time, one process and one torch thread each (default: the machine's cores)",
    )
    worker.add_argument("--hostname", default=None, help="Celery node name (default: opd-<pid>@<host>)")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(handler=_cmd_worker)

    launch = subparsers.add_parser("launch", help="queue a run of a config; prints its id")
    launch.add_argument("config", help="YAML run config")
    _add_overrides(launch)
    launch.add_argument("--tag", action="append", default=[], help="tag the run, repeatable")
    launch.add_argument("--notes", default="")
    launch.set_defaults(handler=_cmd_launch)

    sweep = subparsers.add_parser("sweep", help="queue a grid of runs over config fields; prints their ids")
    sweep.add_argument("config", help="YAML base config")
    sweep.add_argument("name", help="sweep name")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="a field and its values (YAML each), repeatable; runs = the cartesian product",
    )
    _add_overrides(sweep)
    sweep.set_defaults(handler=_cmd_sweep)

    runs = subparsers.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--status", default=None)
    runs.add_argument("--sweep", type=int, default=None)
    runs.add_argument("--tag", default=None)
    runs.add_argument("--json", action="store_true", help="one JSON object per run")
    runs.set_defaults(handler=_cmd_runs)

    for name, help_text, handler in (
        ("cancel", "stop a run after its current step", _cmd_cancel),
        ("resume", "continue a crashed, cancelled or failed run", _cmd_resume),
    ):
        command = subparsers.add_parser(name, help=help_text)
        command.add_argument("run_id", type=int)
        command.set_defaults(handler=handler)


def _add_queue_to_reproduce(reproduce: argparse.ArgumentParser) -> None:
    """opd_core's `opd reproduce` runs the study here; the lab adds `--queue`: its runs go to the workers."""
    reproduce.add_argument(
        "--queue",
        action="store_true",
        help="send every run to the lab's store and broker (a sweep per suite and method) for `opd worker` "
        "processes to execute, wait for them, and build the report from the store; again: continues",
    )
    reproduce.add_argument(
        "--poll-seconds", type=float, default=5.0, help="--queue: how often to look at the runs' status (default 5)"
    )
    local_handler = reproduce.get_default("handler")

    def handler(args) -> int:
        if not args.queue:
            return local_handler(args)
        if args.jobs != 1:
            raise ConfigError("--jobs", "runs on the queue are spread by the workers: drop --jobs with --queue")
        from worker.study_queue import run_queued_study

        return local_handler(args, run=lambda *a, **kw: run_queued_study(*a, poll_seconds=args.poll_seconds, **kw))

    reproduce.set_defaults(handler=handler)


def _queue_list(text: str) -> list[str]:
    queues = [queue.strip() for queue in text.split(",") if queue.strip()]
    unknown = [queue for queue in queues if queue not in QUEUES]
    if unknown or not queues:
        raise argparse.ArgumentTypeError(
            f"unknown queue(s) {', '.join(unknown) or '(none)'}; known: {', '.join(QUEUES)}"
        )
    return queues


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _add_overrides(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field (YAML value), repeatable",
    )


# ---- handlers -------------------------------------------------------------------------------------------
def _cmd_worker(args) -> int:
    from worker.celery_app import build_worker_app
    from worker.settings import Settings

    app = build_worker_app(Settings.from_env())
    concurrency = args.concurrency or os.cpu_count() or 1
    # Several workers may share a host: give each its own node name unless told otherwise.
    hostname = args.hostname or f"opd-{os.getpid()}@%h"
    app.worker_main(
        [
            "worker",
            "--pool",
            "prefork",
            "-Q",
            ",".join(args.queues),
            "--concurrency",
            str(concurrency),
            "--hostname",
            hostname,
            "--loglevel",
            args.loglevel,
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0


def _cmd_launch(args) -> int:
    from worker import api
    from worker.lifecycle import DEFAULT_OUT_DIR

    _refuse_out_dir_override(args.set)
    config = _absolute_inputs(load_config_with_overrides(args.config, args.set))
    run_id = api.launch(config, tags=args.tag, notes=args.notes)
    print(run_id)
    if config.out_dir not in ("", DEFAULT_OUT_DIR, api.settings().run_dir(run_id)):
        print(
            f"opd: note: out_dir {config.out_dir!r} from {args.config} is replaced by the run folder "
            f"{api.settings().run_dir(run_id)} under the data directory",
            file=sys.stderr,
        )
    return 0


def _cmd_sweep(args) -> int:
    import yaml

    from worker import api

    _refuse_out_dir_override(args.set)
    config = _absolute_inputs(load_config_with_overrides(args.config, args.set))
    grid = {}
    for item in args.grid:
        if "=" not in item:
            raise ConfigError("<--grid>", f"expected FIELD=V1,V2, got {item!r}")
        key, values = item.split("=", 1)
        grid[key.strip()] = [yaml.safe_load(value) for value in values.split(",")]
    sweep_id, run_ids = api.launch_sweep(config, grid, args.name)
    print(json.dumps({"sweep_id": sweep_id, "run_ids": run_ids}))
    return 0


def _cmd_runs(args) -> int:
    from worker import api

    runs = api.list_runs(status=args.status, sweep_id=args.sweep, tag=args.tag)
    if args.json:
        for run in runs:
            print(
                json.dumps(
                    {
                        "id": run.id,
                        "name": run.name,
                        "status": run.status,
                        "step": run.step,
                        "total_steps": run.total_steps,
                        "progress": run.progress,
                        "queue": run.queue,
                        "error": run.error,
                        "tags": run.tags,
                    }
                )
            )
        return 0
    print(f"{'id':>5}  {'status':<10} {'progress':>9}  {'queue':<5} name")
    for run in runs:
        progress = f"{run.step}/{run.total_steps}"
        error = f"  ({run.error.splitlines()[0][:80]})" if run.error else ""
        print(f"{run.id:>5}  {run.status:<10} {progress:>9}  {run.queue:<5} {run.name}{error}")
    return 0


def _cmd_cancel(args) -> int:
    from worker import api

    print(api.cancel(args.run_id))
    return 0


def _cmd_resume(args) -> int:
    from worker import api

    api.resume(args.run_id)
    print("queued")
    return 0


def _refuse_out_dir_override(overrides: list[str]) -> None:
    """A launched run always writes to runs/<id> under the data directory: asking for another folder is refused
    rather than silently ignored (an out_dir inside the YAML file, shared with `opd train`, is replaced; the
    run's history says so)."""
    if any(item.split("=", 1)[0].strip() == "out_dir" for item in overrides):
        raise ConfigError(
            "out_dir",
            "a launched run always writes to runs/<id> under the data directory "
            "(OPD_DATA_DIR); drop --set out_dir=..., or use `opd train` for a folder of "
            "your choice",
        )


def _absolute_inputs(config):
    """On the command line, a relative input path that exists from here means this file: make it absolute
    (the worker would otherwise read it relative to the data directory)."""
    for field_name in INPUT_PATH_FIELDS:
        value = getattr(config, field_name)
        if value and not Path(value).is_absolute() and Path(value).exists():
            setattr(config, field_name, str(Path(value).resolve()))
    return config


if __name__ == "__main__":
    sys.exit(main())
