"""Training on other hosts: a PostgreSQL-backed queue (procrastinate) between the API host
and ``ragloop worker``.

The API host prepares the job folder as for local training, but under the shared root
(``RAGLOOP_SHARED_ROOT``, mounted at the same path on every host), defers one queue job
(``TASK``) and waits: it polls the queue job and the retrain job row. A worker host takes the
queue job and runs the same ``python -m ragloop.finetune.worker JOB_DIR`` in a subprocess on
its own device, beating on the job row (``result.worker``) while it runs. The API side fails
the job when no heartbeat arrives within ``RAGLOOP_TRAINING_LEASE_SECONDS`` or when the queue
reports the worker stalled (its own worker heartbeats), so a killed worker never leaves a job
running; the gate's verdict is then read and promotion runs on the API host as before.

procrastinate is an optional dependency (the ``workers`` extra): it is imported only here,
and only when remote training is configured.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import make_url

from ragloop.core.errors import ConfigError
from ragloop.core.settings import Settings
from ragloop.core.storage.catalog import Catalog, display_url, normalize_url
from ragloop.core.storage.jobs import FINAL_STATES, JobStore
from ragloop.finetune.jobspec import EXIT_CANCELLED, EXIT_OK, LOG_TAIL_CHARS, JobFiles

if TYPE_CHECKING:
    from procrastinate import App

#: The queue's task name and queue name (procrastinate's ``procrastinate_jobs`` rows).
TASK = "ragloop.train"
QUEUE = "ragloop-training"
#: Seconds between the API host's looks at the queue job and the job row.
POLL_SECONDS = 0.5
#: Seconds a cancelled job's training process gets to stop by itself before it is killed.
CANCEL_GRACE_SECONDS = 20
#: Heartbeats per lease: a worker beats this often, so one late beat never fails a job.
BEATS_PER_LEASE = 4
#: An advisory lock id that serialises creating the queue's tables.
_SCHEMA_LOCK = 0x7261676C6F6F70


def remote_enabled(settings: Settings) -> bool:
    """Whether retrain jobs go to the queue (RAGLOOP_TRAINING, else RAGLOOP_TRAINING_QUEUE)."""
    if settings.training is not None:
        return settings.training == "remote"
    return settings.training_queue is not None


def queue_url(settings: Settings) -> str:
    """The queue's database: RAGLOOP_TRAINING_QUEUE, else a PostgreSQL catalog's URL."""
    url = normalize_url(settings.training_queue or settings.resolved_catalog_url)
    if make_url(url).get_backend_name() != "postgresql":
        raise ConfigError(
            "remote training needs a PostgreSQL queue: set RAGLOOP_TRAINING_QUEUE to a "
            "postgresql:// URL, or keep the catalog in PostgreSQL (RAGLOOP_CATALOG_URL); "
            f"{display_url(url)} is not one"
        )
    return url


def shared_root(settings: Settings) -> Path:
    """Where remote jobs' folders and candidate models live: RAGLOOP_SHARED_ROOT or the data
    dir (then the data dir must be the shared mount)."""
    return settings.artifacts_root.resolve()


def _conninfo(url: str) -> str:
    """A libpq URL for psycopg (the SQLAlchemy driver suffix removed)."""
    return "postgresql://" + normalize_url(url).removeprefix("postgresql+psycopg://")


def ensure_schema(url: str) -> None:
    """Create procrastinate's tables in the queue database unless they exist (once, under an
    advisory lock, so hosts starting together do not race)."""
    import psycopg
    from procrastinate.schema import SchemaManager

    with psycopg.connect(_conninfo(url), connect_timeout=10) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
        if not (row and row[0]):
            conn.execute(SchemaManager.get_schema().encode())


def make_app(url: str, worker: bool = False) -> App:
    """A procrastinate app on the queue database with the training task registered: an async
    connector for a worker, a synchronous one for the API host (defer, status, cancel)."""
    from procrastinate import App, PsycopgConnector, SyncPsycopgConnector

    conninfo = _conninfo(url)
    connector = (
        PsycopgConnector(conninfo=conninfo)
        if worker
        else SyncPsycopgConnector(conninfo=conninfo, min_size=1, max_size=2)
    )
    app = App(connector=connector)
    app.task(name=TASK, queue=QUEUE)(run_job)
    return app


# ---- the API host ------------------------------------------------------------------------


class RemoteTraining:
    """Defers a prepared job to the queue and waits for a worker to train and gate it."""

    def __init__(self, settings: Settings, jobs: JobStore) -> None:
        self.settings = settings
        self.jobs = jobs
        self.url = queue_url(settings)
        self.lease = settings.training_lease_seconds

    def train(self, job_id: str, files: JobFiles) -> int:
        """Queue the job and wait: ``EXIT_OK`` when the gate's verdict is written,
        ``EXIT_CANCELLED`` when cancelled; raises RuntimeError (the job fails, the old model
        keeps serving) when the worker failed or stopped beating."""
        from procrastinate.jobs import Status

        ensure_schema(self.url)
        app = make_app(self.url)
        with app.open():
            self.jobs.update(job_id, message="waiting for a training worker")
            queued = app.tasks[TASK].defer(job_id=job_id, job_dir=str(files.root), lease=self.lease)
            manager = app.job_manager
            last_beat: object = None
            seen = time.monotonic()
            while True:
                time.sleep(POLL_SECONDS)
                status = manager.get_job_status(queued)
                job = self.jobs.get(job_id)
                if job.state == "cancelling" and status == Status.TODO:
                    if manager.cancel_job_by_id(queued):
                        return EXIT_CANCELLED
                    continue
                if status == Status.SUCCEEDED:
                    return EXIT_CANCELLED if job.state == "cancelling" else EXIT_OK
                if status in (Status.CANCELLED, Status.ABORTED):
                    return EXIT_CANCELLED
                if status == Status.FAILED:
                    raise RuntimeError(self._failure(job.result.get("worker", {}), files))
                if status != Status.DOING:
                    seen = time.monotonic()  # waiting in the queue: no worker, no lease yet
                    continue
                beat = (job.result.get("worker", {}).get("beat"), job.progress, job.message)
                if beat != last_beat:
                    last_beat, seen = beat, time.monotonic()
                stalled = time.monotonic() - seen > self.lease or self._stalled(app, queued)
                if stalled:
                    _fail_queue_job(app, queued)
                    host = job.result.get("worker", {}).get("host", "the training worker")
                    raise RuntimeError(
                        f"{host} stopped sending heartbeats (lease {self.lease:g} s): the "
                        "training worker died; the old model stays active"
                    )

    def _stalled(self, app: App, queued: int) -> bool:
        """Whether the queue counts the job's worker as stalled (no worker heartbeat)."""
        from procrastinate import sql

        rows = app.connector.execute_query_all(
            sql.queries["select_stalled_jobs_by_heartbeat"],
            queue=QUEUE,
            task_name=TASK,
            seconds_since_heartbeat=self.lease,
        )
        return any(row["id"] == queued for row in rows)

    @staticmethod
    def _failure(worker: dict[str, Any], files: JobFiles) -> str:
        if worker.get("error"):
            return str(worker["error"])
        code = worker.get("exit", "an error")
        try:
            tail = files.log_tail().strip().splitlines()[-1:]
        except OSError:
            tail = []
        return f"training worker exited with {code}: {tail or ''}"


def _fail_queue_job(app: App, queued: int) -> None:
    """Mark a stalled queue job failed (the worker that held it is gone)."""
    from procrastinate import sql

    with contextlib.suppress(Exception):  # it may have ended in the meantime
        app.connector.execute_query(
            sql.queries["finish_job"], job_id=queued, status="failed", delete_job=False
        )


# ---- the worker host ---------------------------------------------------------------------


def _parent_death_signal() -> Any:
    """A ``preexec_fn`` (Linux): the training process is killed when the worker that started
    it dies (PR_SET_PDEATHSIG), however it died; looked up here, before the fork."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_signal() -> None:
        prctl(1, signal.SIGKILL)

    return set_signal


def run_job(job_id: str, job_dir: str, lease: float) -> None:
    """The queue task: run the training worker on this host's device, beating on the job row.

    Raises when the training process fails, so the queue job ends ``failed``.
    """
    from ragloop.core.settings import load_settings

    settings = load_settings()
    catalog = Catalog.open(settings.resolved_catalog_url)
    jobs = JobStore(catalog.engine)
    files = JobFiles(Path(job_dir))
    worker: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "beat": 0}

    def beat(**extra: Any) -> str:
        worker.update(extra, beat=worker["beat"] + 1, at=time.time())
        job = jobs.get(job_id)
        jobs.update(job_id, result=job.result | {"worker": dict(worker)})
        return job.state

    try:
        state = beat()
        if state in FINAL_STATES or state == "cancelling":
            return  # failed or cancelled while it waited in the queue
        if not files.spec.is_file():
            message = (
                f"{worker['host']} cannot read the job folder {job_dir}: mount the shared root "
                "at the same path on every host (RAGLOOP_SHARED_ROOT)"
            )
            beat(error=message)
            raise RuntimeError(message)
        jobs.update(job_id, message=f"training on {worker['host']} ({settings.device})")
        env = dict(os.environ, RAGLOOP_CATALOG_URL=settings.resolved_catalog_url)
        with files.log.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ragloop.finetune.worker", job_dir],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_parent_death_signal(),
                start_new_session=True,  # a Ctrl-C at the worker's terminal is the worker's
            )
            try:
                _supervise(proc, beat, lease)
            except BaseException:  # the catalog is unreachable, or the worker is stopping
                proc.kill()
                proc.wait()
                raise
        code = proc.wait()
        beat(exit=code)
        if code not in (EXIT_OK, EXIT_CANCELLED):
            tail = files.log.read_text(errors="replace")[-LOG_TAIL_CHARS:]
            raise RuntimeError(f"training worker exited with {code}: {tail[-300:]}")
    finally:
        catalog.close()


def _supervise(proc: subprocess.Popen[bytes], beat: Callable[[], str], lease: float) -> None:
    """Beat on the job row while the training process runs; kill it when the API host gave
    up on the job, or a cancel was not obeyed within ``CANCEL_GRACE_SECONDS``."""
    interval = max(lease / BEATS_PER_LEASE, 0.5)
    next_beat = time.monotonic() + interval
    asked = 0.0
    while proc.poll() is None:
        time.sleep(0.25)
        if time.monotonic() < next_beat:
            continue
        next_beat = time.monotonic() + interval
        state = beat()
        if state in FINAL_STATES:  # failed by the API host (lease), or it restarted
            proc.kill()
        elif state == "cancelling":
            asked = asked or time.monotonic()
            if time.monotonic() - asked > CANCEL_GRACE_SECONDS:
                proc.kill()


def run_worker(settings: Settings, name: str | None = None, wait: bool = True) -> None:
    """``ragloop worker``: take training jobs from the queue until stopped (SIGINT/SIGTERM),
    one at a time; ``wait=False`` stops once the queue is empty."""
    url = queue_url(settings)
    ensure_schema(url)
    app = make_app(url, worker=True)
    lease = settings.training_lease_seconds
    app.run_worker(
        queues=[QUEUE],
        concurrency=1,
        name=name or f"{socket.gethostname()}-{os.getpid()}",
        wait=wait,
        update_heartbeat_interval=max(lease / BEATS_PER_LEASE, 0.5),
        stalled_worker_timeout=lease,
        delete_jobs="never",
    )
