"""Database capture against the real servers: what a ``db_call`` holds, and what it never does."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import psycopg.rows
import pymysql
import pymysql.cursors
import pytest
import sqlalchemy as sa

import pytest_replay as replay
from pytest_replay.capture.db import captured_systems, install_db_capture, uninstall_db_capture
from tests.external.db_servers import (
    MYSQL,
    MYSQL_PORT,
    PG_DSN,
    PG_PORT,
    PG_URL,
    capturing,
    mysql_admin,
    pg_admin,
    require,
    run,
    unique,
)

pytestmark = pytest.mark.database


@pytest.fixture
def pg_table() -> Iterator[str]:
    """A fresh PostgreSQL table ``(id, name, password)``, dropped after."""
    name = unique("cap")
    pg_admin(f"create table {name} (id int primary key, name text, password text)")
    pg_admin(f"insert into {name} values (1, 'ann', 's1'), (2, 'bob', 's2'), (3, 'cy', 's3')")
    yield name
    pg_admin(f"drop table if exists {name}")


@pytest.fixture
def my_table() -> Iterator[str]:
    """A fresh MariaDB table ``(id int auto_increment primary key, name varchar)``."""
    name = unique("cap")
    mysql_admin(f"create table {name} (id int auto_increment primary key, name varchar(20))")
    mysql_admin(f"insert into {name} (name) values ('ann'), ('bob')")
    yield name
    mysql_admin(f"drop table if exists {name}")


def calls(result: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in ("timestamp_ns", "duration_ns",
                                                      "correlation_id", "trace_id", "_line")}
            for e in result.db_calls]


# -- installation -------------------------------------------------------------------------

def test_importing_the_capture_module_imports_no_driver() -> None:
    code = ("import sys, pytest_replay.capture.db, pytest_replay.replay.db_serve; "
            "print([m for m in ('psycopg', 'pymysql', 'redis', 'sqlite3', 'sqlalchemy') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_a_driver_that_is_not_installed_is_skipped() -> None:
    code = ("import sys; sys.modules['pymysql'] = None; sys.modules['redis'] = None\n"
            "from pytest_replay.capture.db import install_db_capture\n"
            "print(install_db_capture())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "('postgresql', 'sqlite')"


def test_install_is_idempotent_and_uninstall_restores_every_driver() -> None:
    import redis

    before = (psycopg.Cursor.execute, psycopg.connect, sqlite3.connect,
              pymysql.cursors.Cursor.execute, redis.Redis.execute_command)
    try:
        assert install_db_capture() == ("postgresql", "mysql", "sqlite", "redis")
        wrapped = psycopg.Cursor.execute
        assert wrapped is not before[0]
        assert install_db_capture(["sqlite"]) == ("postgresql", "mysql", "sqlite", "redis")
        assert psycopg.Cursor.execute is wrapped  # not wrapped twice
        assert wrapped.__wrapped__ is before[0]  # type: ignore[attr-defined]
    finally:
        uninstall_db_capture()
    uninstall_db_capture()
    assert captured_systems() == ()
    after = (psycopg.Cursor.execute, psycopg.connect, sqlite3.connect,
             pymysql.cursors.Cursor.execute, redis.Redis.execute_command)
    assert after == before
    with pytest.raises(ValueError, match="unknown database system"):
        install_db_capture(["oracle"])


# -- when nothing is written --------------------------------------------------------------

def test_nothing_is_written_outside_a_sampled_request(pg_table: str) -> None:
    with capturing() as sink:
        with psycopg.connect(PG_DSN) as connection:
            connection.execute(f"select * from {pg_table}").fetchall()  # no request, no frame
        replay.configure(sink=sink, sample_rate=0.0)
        install_db_capture()
        with replay.request_scope("unsampled"), psycopg.connect(PG_DSN) as connection:
            connection.execute(f"select * from {pg_table}").fetchall()
    install_db_capture()
    try:  # capture installed but the runtime off: still nothing
        with replay.request_scope("off"), psycopg.connect(PG_DSN) as connection:
            rows = connection.execute(f"select id from {pg_table} order by id").fetchall()
    finally:
        uninstall_db_capture()
    assert rows == [(1,), (2,), (3,)]
    assert [orjson.loads(line)["event_type"] for line in sink.lines] == []


# -- PostgreSQL ---------------------------------------------------------------------------

@replay.traced
def pg_lookup(table: str, wanted: int) -> list[Any]:
    with psycopg.connect(PG_DSN) as connection:
        first = connection.execute(f"select id, name from {table} where id = %s",
                                   (wanted,)).fetchone()
        cursor = connection.cursor()
        cursor.execute(f"select id from {table} order by id")
        some = cursor.fetchmany(2)
        rest = list(cursor)
        return [first, some, rest]


def test_postgres_call_records_statement_parameters_description_rows(pg_table: str) -> None:
    result = run(pg_lookup, pg_table, 2)
    assert result.error is None
    assert result.value == [(2, "bob"), [(1,), (2,)], [(3,)]]
    lookup, scan, commit = result.db_calls
    assert lookup["system"] == "postgresql"
    assert lookup["operation"] == "execute"
    assert lookup["statement"] == f"select id, name from {pg_table} where id = %s"
    assert lookup["parameters"] == {"$type": "tuple", "items": [2]}
    assert lookup["description"] == ["id", "name"]
    assert lookup["rowcount"] == 1
    assert lookup["rows"] == [[2, "bob"]]
    assert lookup["exhausted"] is True
    assert "lastrowid" not in lookup  # psycopg has none
    assert isinstance(lookup["duration_ns"], int) and lookup["duration_ns"] > 0
    assert lookup["correlation_id"] == result.events[0]["correlation_id"]  # the calling frame
    assert scan["rows"] == [[1], [2], [3]]  # fetchmany then iteration, in order
    assert scan["exhausted"] is True
    assert (commit["operation"], commit["statement"]) == ("commit", "COMMIT")


@replay.traced
def pg_partial(table: str) -> list[Any]:
    with psycopg.connect(PG_DSN) as connection:
        cursor = connection.cursor()
        cursor.execute(f"select id from {table} order by id")
        first = cursor.fetchone()
        cursor.execute(f"select name from {table} order by id")  # the first result is finished
        names = cursor.fetchall()
        connection.execute(f"select 1 from {table}")  # never fetched; the cursor is dropped
        closed = connection.cursor()
        closed.execute(f"select id from {table} where id > %s", [1])
        closed.close()
        return [first, names]


def test_fetched_rows_are_recorded_as_fetched_and_finished_by_the_next_step(
        pg_table: str) -> None:
    result = run(pg_partial, pg_table)
    assert result.value == [(1,), [("ann",), ("bob",), ("cy",)]]
    events = calls(result)
    assert [(e["statement"].split(" from")[0], e.get("rows"), e.get("exhausted"))
            for e in events[:4]] == [
        ("select id", [[1]], False),
        ("select name", [["ann"], ["bob"], ["cy"]], True),
        ("select 1", [], False),
        ("select id", [], False),
    ]
    assert events[3]["parameters"] == [1]


@replay.traced
def pg_shapes(table: str) -> list[Any]:
    with psycopg.connect(PG_DSN, row_factory=psycopg.rows.dict_row) as connection:
        as_dicts = connection.execute(f"select id, name from {table} where id = 1").fetchall()
        cursor = connection.cursor(row_factory=psycopg.rows.namedtuple_row)
        as_tuples = cursor.execute(f"select id, name from {table} where id = 2").fetchall()
        spaced = connection.execute(f"""
            select   id
              from {table}
             where name = 'a  b'
        """).fetchall()
        return [as_dicts, [tuple(row) for row in as_tuples], spaced]


def test_row_shapes_are_recorded_as_column_values_and_whitespace_is_normalized(
        pg_table: str) -> None:
    result = run(pg_shapes, pg_table)
    assert result.value == [[{"id": 1, "name": "ann"}], [(2, "bob")], []]
    dicts, tuples, spaced = result.db_calls[:3]
    assert dicts["rows"] == [[1, "ann"]]
    assert tuples["rows"] == [[2, "bob"]]
    assert spaced["statement"] == f"select id from {pg_table} where name = 'a  b'"
    assert spaced["exhausted"] is True and spaced["rowcount"] == 0


@replay.traced
def pg_transactions(table: str) -> list[Any]:
    with psycopg.connect(PG_DSN) as connection:
        connection.execute(f"update {table} set name = 'x' where id = 1")
        connection.rollback()
        connection.execute(f"update {table} set name = 'z' where id = 3")
        connection.commit()
        with connection.transaction():
            connection.execute(f"update {table} set name = 'y' where id = 2")
        try:
            with connection.transaction():
                connection.execute(f"insert into {table} values (1, 'dup', null)")
        except psycopg.errors.UniqueViolation as exc:
            caught = type(exc).__name__
        names = connection.execute(f"select name from {table} order by id").fetchall()
    return [caught, names]


def test_transactions_and_an_integrity_error_are_recorded(pg_table: str) -> None:
    result = run(pg_transactions, pg_table)
    assert result.value == ["UniqueViolation", [("ann",), ("y",), ("z",)]]
    steps = [(e["operation"], e["statement"].split(" ")[0]) for e in result.db_calls]
    assert steps == [("execute", "update"), ("rollback", "ROLLBACK"), ("execute", "update"),
                     ("commit", "COMMIT"), ("execute", "update"), ("commit", "COMMIT"),
                     ("execute", "insert"), ("rollback", "ROLLBACK"), ("execute", "select"),
                     ("commit", "COMMIT")]
    failed = result.db_calls[6]
    assert failed["error_type"] == "UniqueViolation"
    assert failed["error_module"] == "psycopg.errors"
    assert "duplicate key" in failed["message"]
    assert "rows" not in failed and "rowcount" not in failed


@replay.traced
def pg_bulk(table: str) -> int:
    with psycopg.connect(PG_DSN) as connection:
        cursor = connection.cursor()
        cursor.executemany(f"insert into {table} (id, name) values (%s, %s)",
                           ((n, f"n{n}") for n in range(10, 13)))
        return cursor.rowcount


def test_executemany_is_one_call_with_every_parameter_set(pg_table: str) -> None:
    result = run(pg_bulk, pg_table)
    assert result.value == 3
    bulk = result.db_calls[0]
    assert bulk["operation"] == "executemany"
    assert bulk["parameters"] == [{"$type": "tuple", "items": [n, f"n{n}"]}
                                  for n in range(10, 13)]
    assert bulk["rowcount"] == 3


@replay.traced
def pg_secrets(table: str) -> bool:
    with psycopg.connect(PG_DSN) as connection:
        row = connection.execute(
            f"select name, password from {table} where name = %(user)s and password = %(password)s",
            {"user": "ann", "password": "s1"}).fetchone()
        return row == ("ann", "s1")


def test_secret_parameters_and_columns_are_redacted(pg_table: str) -> None:
    result = run(pg_secrets, pg_table)
    assert result.value is True  # the application sees everything
    event = result.db_calls[0]
    assert event["parameters"] == {"user": "ann", "password": {"$type": "redacted",
                                                               "rule": "key"}}
    assert event["rows"] == [["ann", {"$type": "redacted", "rule": "key"}]]
    assert "s1" not in orjson.dumps(result.events).decode()


@replay.traced
def pg_capped(table: str) -> list[Any]:
    with psycopg.connect(PG_DSN) as connection:
        return connection.execute(f"select id from {table} order by id").fetchall()


def test_rows_beyond_the_cap_are_counted_not_kept(pg_table: str) -> None:
    with capturing() as sink:
        install_db_capture(max_rows=2)
        try:
            with replay.request_scope("capped"):
                rows = pg_capped(pg_table)
        finally:
            install_db_capture(max_rows=1000)
    event = next(e for e in map(orjson.loads, sink.lines) if e["event_type"] == "db_call")
    assert rows == [(1,), (2,), (3,)]
    assert event["rows"] == [[1], [2]]
    assert event["rows_truncated"] is True and event["rows_fetched"] == 3


class Hostile:
    """A parameter whose repr and attributes raise."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(name)


class FailingSink:
    """A sink that always raises."""

    def write(self, line: bytes) -> None:
        raise OSError("disk full")

    def flush(self) -> None:
        """Nothing."""

    def close(self) -> None:
        """Nothing."""


def test_capture_never_breaks_the_application_nor_changes_results(pg_table: str) -> None:
    require("PostgreSQL", PG_PORT)
    plain = pg_lookup(pg_table, 3)
    replay.configure(sink=FailingSink())
    install_db_capture()
    try:
        with replay.request_scope("broken-sink"):
            captured = pg_lookup(pg_table, 3)
            with psycopg.connect(PG_DSN) as connection, pytest.raises(psycopg.ProgrammingError):
                connection.execute("select %s", (Hostile(),))  # psycopg refuses it, we don't
    finally:
        uninstall_db_capture()
        replay.shutdown()
    assert captured == plain


# -- MariaDB (PyMySQL) ----------------------------------------------------------------------

@replay.traced
def mysql_work(table: str) -> list[Any]:
    connection = pymysql.connect(**MYSQL, cursorclass=pymysql.cursors.DictCursor)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"insert into {table} (name) values (%s)", ("cy",))
            new_id = cursor.lastrowid
            cursor.executemany(f"insert into {table} (name) values (%s)", [("d",), ("e",)])
            connection.commit()
            cursor.execute(f"select id, name from {table} where id <= %s order by id", (2,))
            rows = cursor.fetchall()
            try:
                cursor.execute(f"insert into {table} (id, name) values (1, 'dup')")
            except pymysql.err.IntegrityError as exc:
                code = exc.args[0]
            connection.rollback()
        with connection.cursor(pymysql.cursors.SSCursor) as unbuffered:
            unbuffered.execute(f"select name from {table} order by id")
            streamed = [row for row in unbuffered]
        return [new_id, rows, code, streamed]
    finally:
        connection.close()


def test_mysql_calls_with_dict_and_unbuffered_cursors(my_table: str) -> None:
    require("MariaDB", MYSQL_PORT)
    result = run(mysql_work, my_table)
    assert result.error is None
    new_id, rows, code, streamed = result.value
    assert (new_id, code) == (3, 1062)
    assert rows == [{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}]
    assert streamed == [("ann",), ("bob",), ("cy",), ("d",), ("e",)]
    events = calls(result)
    assert [(e["operation"], e["statement"].split(" ")[0]) for e in events] == [
        ("execute", "insert"), ("executemany", "insert"), ("commit", "COMMIT"),
        ("execute", "select"), ("execute", "insert"), ("rollback", "ROLLBACK"),
        ("execute", "select")]  # executemany's own inner execute is not recorded twice
    assert events[0]["lastrowid"] == 3 and events[0]["rowcount"] == 1
    assert events[1]["parameters"] == [{"$type": "tuple", "items": ["d"]},
                                       {"$type": "tuple", "items": ["e"]}]
    assert events[3]["rows"] == [[1, "ann"], [2, "bob"]] and events[3]["exhausted"] is True
    assert events[4]["error_type"] == "IntegrityError"
    assert events[4]["error_module"] == "pymysql.err"
    assert events[4]["error_args"][0] == 1062
    assert events[6]["rows"] == [["ann"], ["bob"], ["cy"], ["d"], ["e"]]
    assert events[6]["exhausted"] is True


# -- sqlite -------------------------------------------------------------------------------

@replay.traced
def sqlite_work(path: str) -> list[Any]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    connection.executescript("create table t (id integer primary key, name text unique);")
    with connection:
        connection.executemany("insert into t (name) values (?)", [("ann",), ("bob",)])
    row = connection.execute("select id, name from t where name = ?", ("bob",)).fetchone()
    try:
        with connection:
            connection.execute("insert into t (name) values ('ann')")
    except sqlite3.IntegrityError as exc:
        error = str(exc)
    connection.close()
    return [dict(row), error]


def test_sqlite_calls_on_a_file(tmp_path: Path) -> None:
    result = run(sqlite_work, str(tmp_path / "shop.db"))
    assert result.value == [{"id": 2, "name": "bob"}, "UNIQUE constraint failed: t.name"]
    events = calls(result)
    assert [(e["operation"], e["statement"].split(" ")[0]) for e in events] == [
        ("executescript", "create"), ("executemany", "insert"), ("commit", "COMMIT"),
        ("execute", "select"), ("execute", "insert"), ("rollback", "ROLLBACK")]
    assert all(e["system"] == "sqlite" for e in events)
    assert events[3]["rows"] == [[2, "bob"]] and events[3]["description"] == ["id", "name"]
    assert events[3]["exhausted"] is False  # fetchone on an unbuffered cursor: end unknown
    assert events[4]["error_type"] == "IntegrityError" and events[4]["error_module"] == "sqlite3"


def test_a_call_open_when_the_sink_changes_never_writes_into_the_new_sink(
        tmp_path: Path) -> None:
    from pytest_replay.capture.runtime import RUNTIME

    database = tmp_path / "shop.db"
    setup = sqlite3.connect(database)
    with setup:  # commits; closing is ours (an unclosed connection warns on 3.13)
        setup.execute("create table t (id integer primary key, name text)")
        setup.execute("insert into t (name) values ('ann'), ('bob')")
    setup.close()
    dropped_before = RUNTIME.stats.by_reason.get("db_capture_error", 0)
    with capturing() as first, replay.request_scope(unique("req")):
        connection = sqlite3.connect(database)
        cursor = connection.execute("select id, name from t order by id")  # held for fetches
        second = replay.MemorySink()
        RUNTIME.sink = second  # replay does this between runs
        assert cursor.fetchall() == [(1, "ann"), (2, "bob")]
        connection.close()
    assert not [line for line in second.lines if b'"db_call"' in line]
    assert not [line for line in first.lines if b'"db_call"' in line]
    assert RUNTIME.stats.by_reason.get("db_capture_error", 0) == dropped_before + 1


def test_a_new_sink_keeps_call_sites_templates_and_a_new_service_renews_them() -> None:
    from pytest_replay.capture.runtime import RUNTIME

    @replay.traced
    def price(amount: float) -> float:
        return amount * 2

    with capturing() as sink:
        price(1.0)
        site_generation = RUNTIME.generation
        RUNTIME.sink = replay.MemorySink()  # no template depends on the sink
        assert RUNTIME.generation == site_generation
        RUNTIME.sink = sink
        RUNTIME.service = "shop"
        assert RUNTIME.generation > site_generation
        price(2.0)
    service_lines = [orjson.loads(line) for line in sink.lines]
    assert [event.get("service") for event in service_lines] == [None, None, "shop", "shop"]


# -- SQLAlchemy ---------------------------------------------------------------------------

@replay.traced
def sa_work(table: str, url: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"update {table} set name = :n where id = :i"),
                               {"n": "anne", "i": 1})
        with engine.connect() as connection:
            return list(connection.execute(
                sa.text(f"select id, name from {table} where id < :i order by id"), {"i": 3}))
    finally:
        engine.dispose()


def test_sqlalchemy_over_psycopg_is_captured_through_the_dbapi_layer(pg_table: str) -> None:
    result = run(sa_work, pg_table, PG_URL)
    assert [tuple(row) for row in result.value] == [(1, "anne"), (2, "bob")]
    statements = [e["statement"] for e in result.db_calls]
    assert "select pg_catalog.version()" in statements  # the dialect's own first-connect probes
    update = next(e for e in result.db_calls if e["statement"].startswith("update"))
    assert update["statement"] == f"update {pg_table} set name = %(n)s where id = %(i)s"
    assert update["parameters"] == {"n": "anne", "i": 1}
    select = next(e for e in result.db_calls if e["statement"].startswith("select id"))
    assert select["rows"] == [[1, "anne"], [2, "bob"]]
    assert ("commit", "COMMIT") in [(e["operation"], e["statement"]) for e in result.db_calls]
