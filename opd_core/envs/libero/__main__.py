"""LIBERO tools until the `opd` command grows them: `python -m opd_core.envs.libero COMMAND ...`.

  check                      is the extra installed; build one environment and render a frame
  expert-success             the scripted expert's per-task success under the standard protocol
  demos                      expert demonstrations in LIBERO's HDF5 layout (for sft and the 1-demo split)
  make-teacher               a `libero_expert` teacher checkpoint (calibrated logits, identity action bins)

A checkpoint's standard-protocol evaluation is `opd eval CHECKPOINT` (per-task success, agent-view + wrist videos).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _tasks(args) -> list[str]:
    from opd_core.envs.libero import catalog

    if args.tasks:
        return [t.strip() for t in args.tasks.split(",") if t.strip()]
    return catalog().suite_tasks(args.suite)


def cmd_check(args) -> dict:
    from opd_core.envs.libero import make_libero_env
    from opd_core.envs.libero.tasks import catalog

    task = catalog().suite_tasks(args.suite)[0]
    started = time.perf_counter()
    env = make_libero_env(1, image_size=args.image_size, num_workers=1)
    try:
        obs = env.reset([task], [0])
        obs, _ = env.step([[0, 0, 0, 0, 0, 0, -1]])
    finally:
        env.close()
    return {
        "ok": True,
        "task": task,
        "instruction": obs.instructions[0],
        "image": list(obs.image.shape),
        "wrist": list(obs.wrist.shape),
        "mean_pixel": float(obs.image.mean()),
        "seconds": time.perf_counter() - started,
    }


def cmd_expert_success(args) -> dict:
    from opd_core.envs.libero.policy import LiberoExpertPolicy
    from opd_core.envs.libero.protocol import evaluate_protocol
    from opd_core.tokenizer import ActionTokenizer

    policy = LiberoExpertPolicy(ActionTokenizer.identity())
    result = evaluate_protocol(
        policy,
        args.suite,
        _tasks(args),
        init_states=args.init_states,
        temperature=args.temperature,
        image_size=args.image_size,
        num_envs=args.num_envs,
        num_workers=args.workers,
        cameras=not args.no_cameras,
        out_dir=args.out,
        videos_per_task=args.videos,
        seed=args.seed,
    )
    return result.to_dict()


def cmd_demos(args) -> dict:
    from opd_core.envs.libero.demos import generate_expert_demos

    counts = generate_expert_demos(
        _tasks(args),
        args.num,
        args.out,
        image_size=args.image_size,
        noise=args.noise,
        seed=args.seed,
        num_envs=args.num_envs,
    )
    return {"out": args.out, "episodes": counts}


def cmd_make_teacher(args) -> dict:
    from opd_core.envs.libero.expert import LogitParams
    from opd_core.envs.libero.policy import save_expert_checkpoint

    params = LogitParams(**({"sigma": tuple(float(v) for v in args.sigma.split(","))} if args.sigma else {}))
    tokenizer = None
    if args.like:  # share the student's action bins, or distillation refuses the pair
        from opd_core.checkpoint import read_meta
        from opd_core.tokenizer import ActionTokenizer

        tokenizer = ActionTokenizer.from_dict(read_meta(args.like)["tokenizer"])
    path = save_expert_checkpoint(args.out, tokenizer, logit_params=params)
    return {
        "checkpoint": str(path),
        "kind": "libero_expert",
        "sigma": list(params.sigma),
        "tokenizer_from": args.like or "identity ([-1, 1] per dimension)",
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m opd_core.envs.libero", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, init_states=5):
        p.add_argument("--suite", default="libero_object")
        p.add_argument("--tasks", default=None, help="comma-separated task names (default: the suite)")
        p.add_argument("--image-size", type=int, default=128)
        p.add_argument("--num-envs", type=int, default=0, help="episodes at once (default: one task's, <= 10)")
        p.add_argument("--workers", type=int, default=0, help="environment processes (default: CPU count)")
        p.add_argument("--seed", type=int, default=0)
        if init_states:
            p.add_argument("--init-states", type=int, default=init_states, help="fixed initial states per task")
            p.add_argument("--temperature", type=float, default=0.0)
            p.add_argument("--videos", type=int, default=1, help="filmed initial states per task")
            p.add_argument("--out", default=None, help="folder for eval.json and videos")

    p = sub.add_parser("check")
    p.add_argument("--suite", default="libero_object")
    p.add_argument("--image-size", type=int, default=128)
    p.set_defaults(handler=cmd_check)
    p = sub.add_parser("expert-success")
    common(p)
    p.add_argument("--no-cameras", action="store_true", help="physics only (faster; no videos)")
    p.set_defaults(handler=cmd_expert_success)
    p = sub.add_parser("demos")
    common(p, init_states=0)
    p.add_argument("--num", type=int, default=50, help="demos per task")
    p.add_argument("--noise", type=float, default=0.0, help="DART noise on executed xyz actions")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=cmd_demos)
    p = sub.add_parser("make-teacher")
    p.add_argument("--out", required=True)
    p.add_argument("--sigma", default=None, help="7 comma-separated stds in normalised action units")
    p.add_argument(
        "--like",
        default=None,
        help="checkpoint whose action tokenizer the teacher must share "
        "(the student's); default: identity bins over [-1, 1]",
    )
    p.set_defaults(handler=cmd_make_teacher)
    return parser


def main(argv: list[str] | None = None) -> int:
    from opd_core.errors import OpdError

    args = build_parser().parse_args(argv)
    try:
        print(json.dumps(args.handler(args), indent=1))
    except OpdError as exc:
        print(f"libero: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
