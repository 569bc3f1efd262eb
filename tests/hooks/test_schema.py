"""Every uvicorn worker creates the feedback tables at start-up, at the same moment: on a new database that must
not fail in any of them (a SQLite file, and a real PostgreSQL). Before this was serialised, 2 of 4 two-worker
starts of the service on a new SQLite file failed ("table cds_feedback already exists")."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from pathlib import Path

import sqlalchemy

from cds.hooks.feedback_store import FeedbackStore

WORKERS = 4
ROUNDS = 2


def _create(url: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    store = FeedbackStore(url)
    barrier.wait(timeout=60)
    try:
        store.create_schema()
    finally:
        store.close()


def _race(url: str) -> list[int | None]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    procs = [ctx.Process(target=_create, args=(url, barrier)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    return [p.exitcode for p in procs]


def _tables(url: str) -> set[str]:
    store = FeedbackStore(url)
    try:
        return set(sqlalchemy.inspect(store.engine).get_table_names())
    finally:
        store.close()


EXPECTED = {"cds_feedback", "cds_issued_card", "cds_seen_jti"}


def test_concurrent_schema_creation_sqlite(tmp_path: Path) -> None:
    for n in range(ROUNDS):
        url = f"sqlite:///{tmp_path / f'race-{n}.sqlite3'}"
        assert _race(url) == [0] * WORKERS
        assert _tables(url) >= EXPECTED


def test_concurrent_schema_creation_postgresql(postgres_url: str) -> None:
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        for n in range(ROUNDS):
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS schema_race_{n}")
                conn.exec_driver_sql(f"CREATE DATABASE schema_race_{n}")
            url = postgres_url.rsplit("/", 1)[0] + f"/schema_race_{n}"
            assert _race(url) == [0] * WORKERS
            assert _tables(url) >= EXPECTED
    finally:
        admin.dispose()
