"""One run across two hosts with torchrun's c10d rendezvous (nnodes=2, nproc_per_node=1).

The hosts are two network namespaces joined by a veth pair, created and removed by the test (root and iproute2
needed); where namespaces cannot be made, two loopback addresses (127.0.0.2 and 127.0.0.3) stand in, each host a
process group of its own (OPD_TEST_TWO_HOSTS=loopback forces that variant). The run folder is shared, as on a
cluster's shared filesystem; global rank 0 writes it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from opd_core.sinks import read_metrics
from tinyrun import tiny_config

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS = REPO_ROOT / "assets/tabletop/object"
PORT = 29461


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def two_hosts():
    """[(address, command prefix, gloo interface)] for host 0 and host 1."""
    tag = uuid.uuid4().hex[:6]
    names = [f"opd-{tag}-{k}" for k in (0, 1)]
    links = [f"v{tag}{k}" for k in (0, 1)]
    made: list[str] = []
    try:
        if os.environ.get("OPD_TEST_TWO_HOSTS") == "loopback":
            raise PermissionError("OPD_TEST_TWO_HOSTS=loopback asks for the loopback stand-in")
        if shutil.which("ip") is None or os.geteuid() != 0:
            raise PermissionError("network namespaces need root and iproute2")
        for name in names:
            if _ip("netns", "add", name).returncode:
                raise PermissionError(f"cannot create network namespace {name}")
            made.append(name)
        steps = [("link", "add", links[0], "type", "veth", "peer", "name", links[1])]
        for k, (name, link) in enumerate(zip(names, links, strict=True)):
            steps += [
                ("link", "set", link, "netns", name),
                ("-n", name, "addr", "add", f"10.231.{int(tag[:2], 16)}.{k + 1}/24", "dev", link),
                ("-n", name, "link", "set", link, "up"),
                ("-n", name, "link", "set", "lo", "up"),
            ]
        for step in steps:
            done = _ip(*step)
            if done.returncode:
                raise PermissionError(f"ip {' '.join(step)}: {done.stderr.strip()}")
        hosts = [
            (f"10.231.{int(tag[:2], 16)}.{k + 1}", ["ip", "netns", "exec", name], link)
            for k, (name, link) in enumerate(zip(names, links, strict=True))
        ]
    except PermissionError:
        for name in made:
            _ip("netns", "del", name)
        made = []
        hosts = [("127.0.0.2", [], "lo"), ("127.0.0.3", [], "lo")]
    try:
        yield hosts
    finally:
        for name in made:  # deleting a namespace removes its end of the veth pair, and so the pair
            _ip("netns", "del", name)


def _torchrun(host, endpoint: str, rdzv_id: str, is_host: bool, config_path: Path, log: Path) -> subprocess.Popen:
    address, prefix, interface = host
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": interface,
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        *prefix,
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "1",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        endpoint,
        "--rdzv-id",
        rdzv_id,
        "--local-addr",
        address,
        # which host serves the rendezvous store (its hostname does not resolve to its namespace's address)
        "--rdzv-conf",
        f"is_host={int(is_host)}",
        "--max-restarts",
        "0",
        "-m",
        "opd_core.distributed",
        str(config_path),
    ]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


@pytest.mark.timeout(300)
def test_a_run_spans_two_hosts_and_logs_the_one_process_run(tmp_path, two_hosts):
    common = dict(
        pipeline="grpo",
        student_checkpoint=str(ASSETS / "student"),
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
        per_trajectory_seeds=True,
    )
    config = tiny_config(tmp_path / "run", nnodes=2, **common)
    config_path = tmp_path / "run.yaml"
    config.save(config_path)
    rdzv_id = f"opd-{uuid.uuid4().hex[:6]}"  # the same on both hosts: it names this run's rendezvous
    endpoint = f"{two_hosts[0][0]}:{PORT}"
    processes = []
    try:
        for k, host in enumerate(two_hosts):
            process = _torchrun(host, endpoint, rdzv_id, k == 0, config_path, tmp_path / f"host{k}.log")
            processes.append(process)
        codes = [process.wait(timeout=240) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    logs = "\n".join(f"--- host{k}\n{(tmp_path / f'host{k}.log').read_text()[-3000:]}" for k in range(2))
    assert codes == [0, 0], logs

    rows = read_metrics(tmp_path / "run")
    assert [row["step"] for row in rows if "train/loss" in row] == [1, 2]
    assert sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir()) == ["step_0", "step_1", "step_2"]

    from opd_core.sinks import LocalDirSink
    from opd_core.train import train

    reference = tiny_config(tmp_path / "one", **common)
    sink = LocalDirSink(reference.out_dir)
    try:
        train(reference, sink)
    finally:
        sink.close()
    one = [row for row in read_metrics(tmp_path / "one") if row["step"] <= 1]
    two = [row for row in rows if row["step"] <= 1]
    for a, b in zip(one, two, strict=True):
        for key, value in a.items():
            if not key.startswith("time/"):
                assert b[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
