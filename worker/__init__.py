"""The lab's run store and workers: where Celery, the database and opd_core meet.

    settings     where state lives (OPD_DATA_DIR, OPD_DATABASE_URL, OPD_BROKER_URL, timing knobs)
    models       the tables (SQLAlchemy 2.0); migrations/ creates them, migrate applies them at start
    store        engine factory and sessions; StoreUnavailable for a busy or unreachable database
    metric_rows  batched metric upserts and fast series reads (NaN and infinities kept)
    lifecycle    run status transitions (claim, heartbeat, finish, cancel, resume, reap)
    queries      read-only queries returning plain dataclasses
    sql_sink     the MetricsSink a worker hands to opd_core.train
    celery_app   broker, queues, acknowledgement policy, worker process start-up
    tasks        the task that runs one attempt of one run
    api          the only module the dashboard imports
    cli          the `opd` command (opd_core's subcommands plus worker, launch, sweep, runs, cancel, resume)
"""
