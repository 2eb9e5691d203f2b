"""Fixtures for the store and worker tests: real databases, real brokers, real worker processes.

Two backends, the same tests:
- embedded: SQLite + Celery's filesystem broker in a fresh temporary data directory per test;
- servers: PostgreSQL (one throw-away database per test session, emptied before each test) + Redis (database 15,
  flushed before each test). Server URLs: OPD_TEST_POSTGRES_URL (default
  postgresql+psycopg://postgres@127.0.0.1:5432/test, used to create the throw-away database) and
  OPD_TEST_REDIS_URL (default redis://127.0.0.1:6379/15).
When a server does not answer, its tests skip saying so, unless OPD_REQUIRE_SERVERS=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("OPD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("OPD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TABLES = ("metrics", "videos", "checkpoints", "runs", "sweeps")


def servers_required() -> bool:
    return os.environ.get("OPD_REQUIRE_SERVERS") == "1"


def _unreachable(what: str, url: str, reason: str):
    message = f"{what} at {url} is not reachable ({reason})"
    if servers_required():
        pytest.fail(f"{message}, and OPD_REQUIRE_SERVERS=1 makes the server-backed tests mandatory", pytrace=False)
    pytest.skip(f"{message}: server-backed tests skipped (set OPD_REQUIRE_SERVERS=1 to fail instead)")


# ---- PostgreSQL --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_database_url():
    """A fresh database for this test session, dropped at the end."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"opd_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to get a database means: no server for these tests
        admin.dispose()
        _unreachable(
            "PostgreSQL", make_url(POSTGRES_URL).render_as_string(hide_password=True), str(exc).splitlines()[0]
        )
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_postgres(url: str) -> None:
    from sqlalchemy import create_engine, inspect, text

    from worker.migrate import upgrade_to_head

    engine = create_engine(url)
    try:
        upgrade_to_head(engine)
        present = [table for table in TABLES if inspect(engine).has_table(table)]
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {', '.join(present)} CASCADE"))
    finally:
        engine.dispose()


# ---- Redis -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_url():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        _unreachable("Redis", REDIS_URL, str(exc).splitlines()[0])
    finally:
        client.close()
    yield REDIS_URL
    _flush_redis(REDIS_URL)


def _flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


# ---- settings per backend ----------------------------------------------------------------------------------
def _fast_settings(data_dir: Path, **urls):
    """Short intervals so that the tests wait seconds, not the production minute."""
    from worker.settings import Settings

    return Settings(data_dir=data_dir, stale_after_seconds=4.0, heartbeat_seconds=0.5, cancel_poll_seconds=0.05, **urls)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.servers)])
def db_settings(request, tmp_path):
    """Settings for a store on each database (no broker involved)."""
    if request.param == "sqlite":
        return _fast_settings(tmp_path / "data")
    url = request.getfixturevalue("postgres_database_url")
    _empty_postgres(url)
    return _fast_settings(tmp_path / "data", database_url=url)


@pytest.fixture(params=["embedded", pytest.param("servers", marks=pytest.mark.servers)])
def lab_settings(request, tmp_path):
    """Settings for the whole lab: embedded (SQLite + filesystem broker) or servers (PostgreSQL + Redis)."""
    if request.param == "embedded":
        return _fast_settings(tmp_path / "data")
    database_url = request.getfixturevalue("postgres_database_url")
    broker_url = request.getfixturevalue("redis_url")
    _empty_postgres(database_url)
    _flush_redis(broker_url)
    return _fast_settings(tmp_path / "data", database_url=database_url, broker_url=broker_url)


@pytest.fixture
def store(db_settings):
    from worker.migrate import upgrade_to_head
    from worker.store import Store

    store = Store(db_settings)
    upgrade_to_head(store.engine)
    yield store
    store.close()


@pytest.fixture
def lab(lab_settings):
    """The worker API configured for this test's backend."""
    from worker import api

    api.configure(lab_settings)
    yield api
    api.configure(None)


# ---- worker processes --------------------------------------------------------------------------------------
class WorkerProcess:
    """A real `opd worker` (Celery, prefork pool) in its own process group, logging to a file."""

    def __init__(self, settings, log_path: Path, queues: str = "cpu", name: str = "w"):
        env = {
            **os.environ,
            **settings.to_env(),
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - open for the object's (process's) lifetime, closed by its close()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker.cli",
                "worker",
                "-Q",
                queues,
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "--hostname",
                f"{name}-{uuid.uuid4().hex[:6]}@%h",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in self.log_text():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log_text()}")
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout} s:\n{self.log_text()}")

    def kill_hard(self) -> None:
        """kill -9 the worker and its pool children: what a lost machine looks like to the lab."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        # Tests are done with the worker by now; a warm shutdown would cost 6-8 s per worker.
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def start_worker(tmp_path, request):
    """start_worker(settings, queues="cpu") -> a ready WorkerProcess; all are killed after the test and
    their logs printed when it failed."""
    workers: list[WorkerProcess] = []

    def start(settings, queues: str = "cpu", wait: bool = True) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(workers)}.log", queues, name=f"w{len(workers)}")
        workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        for worker in workers:
            print(f"----- {worker.log_path.name} -----\n{worker.log_text()[-6000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def spawnable_main(monkeypatch):
    """Spawned processes re-import the parent's __main__ by its file; Streamlit's AppTest (earlier in the suite)
    leaves a generated script there that cannot run again. The opd CLI's __main__ is the console script."""
    import types

    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
