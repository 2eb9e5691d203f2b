"""The lab's run store and workers: where Celery, the database and opd_core meet.

settings     where state lives (OPD_DATA_DIR, OPD_DATABASE_URL, OPD_BROKER_URL, timing knobs)
models       the tables (SQLAlchemy 2.0); migrations/ creates them, migrate applies them at start
store        engine factory and sessions; StoreUnavailable for a busy or unreachable database
metric_rows  batched metric upserts and fast series reads (NaN and infinities kept)
lifecycle    run status transitions (claim, heartbeat, finish, cancel, resume, reap), each in run_events
queries      read-only queries returning plain dataclasses
sql_sink     the MetricsSink a worker hands to opd_core.train
broker       task name, queues, filesystem broker folders, which run messages wait in a queue (no Celery)
fifo_transport  kombu's filesystem transport with first-in first-out message names
celery_app   Celery apps (a sender's; the worker's, built by `opd worker`), acknowledgement policy, start-up
tasks        what the task does: run one attempt of one run
run_end      the end of a run across a store outage: retried, else kept on disk and replayed once
reconciler   the worker's timer: unrecorded ends, stale runs, auto-resume, re-sending stranded queued runs
api          the only module the dashboard imports
cli          the `opd` command (opd_core's subcommands plus worker, launch, sweep, runs, cancel, resume)
"""
