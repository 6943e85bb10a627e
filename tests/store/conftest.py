"""Store fixtures. ``store`` / ``store_url``: the SQL store on SQLite (a temp file) and a real
PostgreSQL. ``any_store``: every backend (those two and DynamoDB on moto), for the contract suite."""

from __future__ import annotations

import threading

import pytest

# pg_cluster (one throwaway PostgreSQL server per session) and moto (a reset moto_server) come
# from tests/conftest.py


def _sql_url(kind: str, request, tmp_path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/state/vulnwatch.db"
    return request.getfixturevalue("pg_cluster").create_schema()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A URL of an empty database: a new SQLite file, or a new schema on the test server."""
    return _sql_url(request.param, request, tmp_path)


@pytest.fixture
def store(store_url):
    from vulnwatch.store.sql import SQLStore

    s = SQLStore(store_url)
    yield s
    s.close()


@pytest.fixture
def dynamodb_url(moto):
    """A state URL of a new table (and spill bucket) on the reset moto server (``create=true``:
    made by the store itself, streams on)."""
    return (f"dynamodb://vw-state?region=us-east-1&endpoint_url={moto.url}"
            "&bucket=vw-spill&prefix=state/&create=true")


@pytest.fixture
def dynamodb_contract_url(moto):
    """Like ``dynamodb_url``, but the table is made here from ``table_definition`` without its
    stream, as infrastructure code would make it: nothing in the contract reads the stream, and
    moto copies every table, stream records included, once per item of each transaction, which
    makes a long test quadratic. The stream tests (test_dynamodb.py) use ``dynamodb_url``."""
    from vulnwatch import aws
    from vulnwatch.store.dynamodb import table_definition

    definition = table_definition("vw-contract")
    del definition["StreamSpecification"]
    aws.client("dynamodb", region="us-east-1", endpoint_url=moto.url).create_table(**definition)
    aws.client("s3", region="us-east-1", endpoint_url=moto.url).create_bucket(Bucket="vw-spill")
    return f"dynamodb://vw-contract?region=us-east-1&endpoint_url={moto.url}&bucket=vw-spill"


@pytest.fixture(params=["sqlite", "postgresql", "dynamodb"])
def any_store(request, tmp_path):
    """An empty store of each backend, opened through ``open_store`` as ``state.url`` would be."""
    from vulnwatch.store import open_store

    url = (request.getfixturevalue("dynamodb_contract_url") if request.param == "dynamodb"
           else _sql_url(request.param, request, tmp_path))
    s = open_store(url)
    if request.param == "dynamodb":
        one_call_at_a_time(s)
    yield s
    s.close()


def one_call_at_a_time(store, lock: threading.Lock | None = None) -> None:
    """Send a DynamoDB store's calls to moto one at a time (its threads still run concurrently).

    moto is not atomic across concurrent requests: a transaction copies the table first and a
    cancelled one puts that copy back, erasing writes other requests made meanwhile. Real DynamoDB
    serialises transactions itself; so the store's threads are allowed one request in flight
    against moto, and what the tests race on (two writers that both read before either writes)
    is kept. Several stores on one moto server share ``lock`` to be kept apart the same way."""
    lock = lock or threading.Lock()

    def acquire(**_kw):
        lock.acquire()

    def release(**_kw):
        if lock.locked():
            lock.release()

    events = store._ddb.meta.events
    events.register("before-call.dynamodb", acquire)
    events.register("after-call.dynamodb", release)
    events.register("after-call-error.dynamodb", release)
