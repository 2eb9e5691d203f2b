"""Data-parallel runs on torch.distributed (gloo, CPU): a 2-rank run equals the 1-rank run of the same global batch
and seed (parameters and logged metrics), cancel stops every rank at one step, a failing rank fails the run, resume
restores every rank, and the pieces the loop relies on (per-trajectory seeding, task shards, the global state order).
"""

from pathlib import Path

import pytest
import torch

from hf_models import build_tiny_llava
from opd_core.checkpoint import load_policy, load_training_state, save_checkpoint
from opd_core.config import ConfigError
from opd_core.policies.base import sample_bins
from opd_core.registry import build_policy
from opd_core.sinks import LocalDirSink, read_metrics
from opd_core.tokenizer import ActionTokenizer
from opd_core.train import train
from opd_core.world import SINGLE, World, merge_eval_details, shard_tasks, trajectory_generators
from tinyrun import tiny_config

# ranks are spawned: they must not re-run a __main__ that AppTest left behind (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("spawnable_main")

ASSETS = Path(__file__).resolve().parent.parent / "assets/tabletop/object"
"""The shipped 1-demo object student (its GRPO groups mix success and failure) and its teacher."""


def _config(out_dir: Path, nproc: int, pipeline: str, **changes):
    base = dict(
        pipeline=pipeline,
        student_checkpoint=str(ASSETS / "student"),
        teacher_checkpoint=str(ASSETS / "teacher") if pipeline == "opd" else "",
        policy_width=16,
        policy_hidden=256,
        policy_input_size=32,
        batch_tasks=2,
        group_size=4,
        steps=2,
        max_episode_steps=30,
        eval_every=2,
        eval_init_states=2,
        videos_per_eval=1,
        save_every=1,
        minibatch_size=40,
        updates_per_step=2,
        lr=1e-3,
        nproc_per_node=nproc,
        per_trajectory_seeds=True,
    )
    base.update(changes)
    return tiny_config(out_dir, **base)


def _run(config, **kwargs):
    sink = LocalDirSink(config.out_dir)
    try:
        return train(config, sink, **kwargs)
    finally:
        sink.close()


def _flat_parameters(path: Path) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in load_policy(path).parameters()])


def _scalars(run_dir: Path) -> list[dict]:
    """Logged rows without the timings (wall-clock differs between any two runs)."""
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in read_metrics(run_dir)]


# ============================================================================================ equivalence
@pytest.fixture
def one_torch_thread():
    """The 1-rank run computes in this process with the thread count each spawned rank gets (1 of 1 here): CPU
    kernels split their sums differently over another number of threads (measured: a 2-thread 1-rank GRPO run
    against 1-thread ranks ends 1.3e-5 apart). Other tests change this process's thread count (the worker's pool
    setup, the study jobs, opd_core.bench), which is how the equivalence could fail only after them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("pipeline", ["opd", "grpo"])
def test_two_ranks_equal_one_rank_of_the_same_global_batch(tmp_path, pipeline):
    """Same seed and global batch (B=2 x G=4, one group per rank; 40-state minibatches that straddle the ranks),
    two steps of two passes each: the 2-rank DDP run logs the 1-rank run's metrics (success, entropy, KL, loss,
    grad norm, eval) and ends with its parameters, to float tolerance. The 1-rank run computes in the 2 shards the
    ranks hold (batch_shards: 2): the same forward batches and the same gradient sums, so nothing differs but
    the order in which the metrics' means are taken."""
    one = _run(_config(tmp_path / "one", 1, pipeline, objective="reverse_kl", batch_shards=2))
    two = _run(_config(tmp_path / "two", 2, pipeline, objective="reverse_kl"))
    steps = 2
    assert one.status == two.status == "finished" and one.step == two.step == steps

    start = _flat_parameters(ASSETS / "student")
    p1, p2 = (_flat_parameters(tmp_path / name / f"checkpoints/step_{steps}") for name in ("one", "two"))
    assert torch.linalg.vector_norm(p1 - start) > 0
    assert (p2 - p1).abs().max() <= 1e-6 * p1.abs().max()

    rows1, rows2 = _scalars(tmp_path / "one"), _scalars(tmp_path / "two")
    assert [sorted(r) for r in rows1] == [sorted(r) for r in rows2], "the same metrics at the same steps"
    for a, b in zip(rows1, rows2, strict=True):
        for key, value in a.items():
            assert b[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (a["step"], key)
    used = [row["train/updated_state_fraction"] for row in rows2 if "train/loss" in row]
    assert any(u > 0 for u in used), "a step updated (GRPO: the shipped student's groups can mix outcomes)"

    # only rank 0 wrote the run's files: one config, one checkpoint per step, the evaluation's videos once
    assert sorted(p.name for p in (tmp_path / "two/checkpoints").iterdir()) == [f"step_{k}" for k in range(steps + 1)]
    videos = (tmp_path / "two/videos.jsonl").read_text().splitlines()
    assert len(videos) == len((tmp_path / "one/videos.jsonl").read_text().splitlines()) > 0
    assert (
        load_training_state(tmp_path / f"two/checkpoints/step_{steps}").extra["env_steps"]
        == load_training_state(tmp_path / f"one/checkpoints/step_{steps}").extra["env_steps"]
    )


@pytest.mark.usefixtures("one_torch_thread")
def test_fsdp_shards_a_lora_transformers_student_and_resumes(tmp_path):
    """FSDP2 (fully_shard per decoder layer, then the policy) on a tiny LLaVA with LoRA adapters: the 2-rank run
    ends with the 1-rank run's parameters to float tolerance (the gradient norm is summed over shards, so the
    clip factor may differ in its last bit), only adapters train, and a cancelled run resumes (weights and the
    gathered AdamW state scattered back into the shards) to the straight run's parameters."""
    vla = build_tiny_llava(tmp_path / "vla", hidden=32, layers=2)
    teacher = tmp_path / "teacher"
    arch = {"width": 4, "hidden": 32, "input_size": 16}
    save_checkpoint(teacher, build_policy("small_vla", arch, ActionTokenizer.identity()), step=0)
    base = dict(
        pipeline="opd",
        objective="reverse_kl",
        hf_lora_rank=2,
        student_checkpoint=str(vla),
        teacher_checkpoint=str(teacher),
        steps=2,
        lr=1e-2,
        eval_every=2,
        eval_init_states=1,
        save_every=1,
        max_episode_steps=3,
        batch_tasks=2,
        group_size=2,
        minibatch_size=4,
        updates_per_step=1,
    )
    one = _run(tiny_config(tmp_path / "one", batch_shards=2, **base))
    two = _run(tiny_config(tmp_path / "two", nproc_per_node=2, data_parallel="fsdp", **base))
    assert one.status == two.status == "finished"
    p0, p1, p2 = (
        _flat_parameters(tmp_path / f"{n}/checkpoints/step_{k}") for n, k in [("one", 0), ("one", 2), ("two", 2)]
    )
    assert torch.linalg.vector_norm(p1 - p0) > 0
    assert (p2 - p1).abs().max() <= 1e-6 * p1.abs().max()
    trainable = [n for n, p in load_policy(tmp_path / "two/checkpoints/step_2").named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)

    calls = iter([False, True])
    config = tiny_config(tmp_path / "resumed", nproc_per_node=2, data_parallel="fsdp", **base)
    assert _run(config, stop_requested=lambda: next(calls, True)).step == 1
    resumed = _run(config, resume=True)
    assert resumed.status == "finished" and resumed.resumed_from == 1
    assert torch.equal(_flat_parameters(tmp_path / "resumed/checkpoints/step_2"), p2)


def test_the_one_rank_default_keeps_its_single_generator(tmp_path):
    """Without per_trajectory_seeds a 1-rank run draws from the one generator seeded with `seed`, as before: its
    batch differs from the per-trajectory one (the switch is what makes a 1-rank run reproduce a 2-rank run)."""
    default = _run(_config(tmp_path / "default", 1, "grpo", steps=1, eval_every=0, per_trajectory_seeds=False))
    seeded = _run(_config(tmp_path / "seeded", 1, "grpo", steps=1, eval_every=0))
    assert default.status == seeded.status == "finished"
    a, b = (
        [row for row in read_metrics(tmp_path / name) if "train/entropy" in row][-1] for name in ("default", "seeded")
    )
    assert a["train/entropy"] != b["train/entropy"]


# ============================================================================================ control
def test_cancel_stops_every_rank_at_the_same_step_and_resume_continues_exactly(tmp_path):
    calls = iter([False, True])
    config = _config(tmp_path / "run", 2, "opd", steps=3, eval_every=0, save_every=0)
    cancelled = _run(config, stop_requested=lambda: next(calls, True))
    assert cancelled.status == "cancelled"
    stopped = cancelled.step
    state = load_training_state(tmp_path / f"run/checkpoints/step_{stopped}")
    assert len(state.extra["rank_rng"]) == 2, "every rank's random state is saved"
    resumed = _run(config, resume=True)
    assert resumed.status == "finished" and resumed.step == 3 and resumed.resumed_from == stopped
    steps = [row["step"] for row in read_metrics(tmp_path / "run") if "train/loss" in row]
    assert steps == [1, 2, 3], "each step exactly once after resume"

    straight = _run(config.replace(out_dir=str(tmp_path / "straight")))
    assert straight.status == "finished"
    assert torch.equal(
        _flat_parameters(tmp_path / "run/checkpoints/step_3"),
        _flat_parameters(tmp_path / "straight/checkpoints/step_3"),
    ), "resumed exactly"


def test_an_error_on_a_rank_fails_the_run_with_that_error(tmp_path):
    config = _config(tmp_path / "run", 2, "opd", steps=1, eval_every=0).replace(
        teacher_checkpoint=str(tmp_path / "missing")
    )
    with pytest.raises(Exception, match="teacher checkpoint not found"):
        _run(config)


def test_process_fields_are_validated(tmp_path):
    with pytest.raises(ConfigError, match="nproc_per_node"):
        _config(tmp_path, 0, "opd")
    with pytest.raises(ConfigError, match="batch_tasks"):
        _config(tmp_path, 2, "opd", batch_tasks=3)
    with pytest.raises(ConfigError, match="nproc_per_node"):
        tiny_config(tmp_path, pipeline="sft", demos="x", nproc_per_node=2)
    with pytest.raises(ConfigError, match="data_parallel"):
        _config(tmp_path, 2, "opd", data_parallel="zero3")
    with pytest.raises(ConfigError, match="batch_shards"):
        _config(tmp_path, 2, "opd", batch_shards=3)
    with pytest.raises(ConfigError, match="batch_shards"):
        _config(tmp_path, 1, "opd", batch_shards=4)  # B=2 groups cannot make 4 shards
    assert _config(tmp_path, 1, "opd", batch_shards=2, per_trajectory_seeds=False).trajectory_seeding
    config = _config(tmp_path, 2, "opd", nnodes=2, batch_tasks=4)
    assert config.world_size == 4 and config.trajectory_seeding


# ============================================================================================ pieces
def test_per_trajectory_draws_do_not_depend_on_the_rest_of_the_batch():
    logits = torch.randn(6, 7, 256)
    whole, _ = sample_bins(logits, 1.0, trajectory_generators(3, 5, 0, 6))
    first, _ = sample_bins(logits[:3], 1.0, trajectory_generators(3, 5, 0, 3))
    second, _ = sample_bins(logits[3:], 1.0, trajectory_generators(3, 5, 3, 3))
    assert torch.equal(whole, torch.cat([first, second]))
    other_step, _ = sample_bins(logits, 1.0, trajectory_generators(3, 6, 0, 6))
    assert not torch.equal(whole, other_step)


def test_evaluation_shards_put_filmed_tasks_on_rank_zero_and_cover_every_task_once():
    tasks = [f"t{i}" for i in range(7)]
    shards = shard_tasks(tasks, ["t5", "t1"], 3)
    assert {"t1", "t5"} <= set(shards[0])
    assert sorted(t for s in shards for t in s) == sorted(tasks)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    merged = merge_eval_details(
        [{"failed_episodes": 1, "mean_length": {"a": 2.0}}, {"failed_episodes": 2, "mean_length": {"b": 3.0}}]
    )
    assert merged == {"failed_episodes": 3, "mean_length": {"a": 2.0, "b": 3.0}}


def test_the_single_world_is_an_identity():
    assert SINGLE.sum([1.0, 2.0]) == [1.0, 2.0] and SINGLE.any(True) and SINGLE.gather(3) == [3]
    assert SINGLE.weighted_mean({"a": 0.5}, 4) == {"a": 0.5}
    assert World(1, 4).shard(8) == slice(2, 4)


def test_the_launch_form_has_the_process_fields_and_the_runs_table_counts_ranks():
    from app.forms import field_sections, field_specs
    from app.runs_table import COLUMN_ORDER, rank_count

    names = [spec.name for spec in field_specs()]
    assert {"nproc_per_node", "nnodes", "per_trajectory_seeds", "batch_shards", "data_parallel"} <= set(names)
    assert next(spec for spec in field_specs() if spec.name == "data_parallel").choices == ("ddp", "fsdp")
    assert field_sections()["nproc_per_node"].startswith("processes")
    assert rank_count({"nproc_per_node": 2, "nnodes": 3}) == 6 and rank_count({}) == 1
    assert "ranks" in COLUMN_ORDER
