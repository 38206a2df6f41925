"""Database replay: record against the real servers, destroy the data, replay without them."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import psycopg.errors
import psycopg.rows
import pymysql
import pymysql.cursors
import pytest
import sqlalchemy as sa

import pytest_replay as replay
from pytest_replay.capture.db_open import OPEN
from pytest_replay.replay.db_serve import BadDatabaseRecording, serve_database
from pytest_replay.replay.db_session import ReplayConnectionUsedOutside
from pytest_replay.replay.external import UnrecordedCall
from tests.external.db_servers import (
    DEAD_MYSQL,
    DEAD_PG_DSN,
    MYSQL,
    PG_DSN,
    PG_URL,
    assert_same_calls,
    comparable,
    mysql_admin,
    pg_admin,
    replayed,
    run,
    unique,
)

pytestmark = pytest.mark.database


@pytest.fixture
def pg_table() -> Iterator[str]:
    """A PostgreSQL table ``(id int primary key, name text, amount numeric)``; dropped after."""
    name = unique("rep")
    pg_admin(f"create table {name} (id int primary key, name text, amount numeric(8,2), "
             "seen timestamptz default '2024-05-01 12:00+00')")
    pg_admin(f"insert into {name} (id, name, amount) values (1, 'ann', 10.50), (2, 'bob', 3), "
             "(3, 'cy', null)")
    yield name
    pg_admin(f"drop table if exists {name}")


@pytest.fixture
def my_table() -> Iterator[str]:
    """A MariaDB table ``(id int auto_increment primary key, name varchar)``; dropped after."""
    name = unique("rep")
    mysql_admin(f"create table {name} (id int auto_increment primary key, name varchar(20))")
    mysql_admin(f"insert into {name} (name) values ('ann'), ('bob')")
    yield name
    mysql_admin(f"drop table if exists {name}")


@pytest.fixture(autouse=True)
def no_open_results() -> Iterator[None]:
    """Each test starts and ends with no result held open by capture."""
    yield
    assert len(OPEN) == 0


# -- PostgreSQL -----------------------------------------------------------------------------

@replay.traced
def pg_order(dsn: str, table: str, wanted: int) -> dict[str, Any]:
    """Fetch in every way, write in a transaction, hit a unique violation, roll back."""
    with psycopg.connect(dsn) as connection:
        one = connection.execute(
            f"select id, name, amount, seen from {table} where id = %s", (wanted,)).fetchone()
        cursor = connection.cursor()
        cursor.execute(f"select id from {table} order by id")
        head = cursor.fetchmany(2)
        tail = [row for row in cursor]
        connection.execute(f"select name from {table}")  # never fetched: written at its end
        as_dicts = connection.cursor(row_factory=psycopg.rows.dict_row).execute(
            f"select id, name from {table} where id > %(low)s order by id", {"low": 1}).fetchall()
        cursor.executemany(f"insert into {table} (id, name) values (%s, %s)",
                           [(10, "x"), (11, "y")])
        inserted = cursor.rowcount
        connection.commit()
        try:
            with connection.transaction():
                connection.execute(f"insert into {table} (id, name) values (1, 'dup')")
        except psycopg.errors.UniqueViolation as exc:
            violation = (type(exc).__name__, exc.sqlstate, str(exc).splitlines()[0])
        with connection.transaction():
            connection.execute(f"delete from {table} where id = 11")
            raise_rollback = connection.execute(f"select count(*) from {table}").fetchone()
            with connection.transaction(force_rollback=True):
                connection.execute(f"delete from {table}")
        connection.rollback()
        return {"one": one, "head": head, "tail": tail, "dicts": as_dicts,
                "inserted": inserted, "violation": violation, "count": raise_rollback}


def test_postgres_replays_after_the_table_is_dropped(pg_table: str) -> None:
    recorded = run(pg_order, PG_DSN, pg_table, 1)
    assert recorded.error is None, recorded.error
    pg_admin(f"drop table {pg_table}")
    again = replayed(recorded.db_calls, pg_order, DEAD_PG_DSN, pg_table, 1)
    assert again.error is None, again.error
    assert again.value == recorded.value
    assert again.value["violation"][:2] == ("UniqueViolation", "23505")
    assert again.value["one"][2] == recorded.value["one"][2]  # Decimal('10.50')
    assert again.value["one"][3] == recorded.value["one"][3]  # aware datetime
    assert_same_calls(recorded, again)


def test_a_recorded_integrity_error_is_raised_as_the_drivers_own_class(pg_table: str) -> None:
    @replay.traced
    def insert_duplicate(dsn: str) -> None:
        with psycopg.connect(dsn) as connection:
            connection.execute(f"insert into {pg_table} (id, name) values (2, 'again')")

    recorded = run(insert_duplicate, PG_DSN)
    assert isinstance(recorded.error, psycopg.errors.UniqueViolation)
    pg_admin(f"drop table {pg_table}")
    again = replayed(recorded.db_calls, insert_duplicate, DEAD_PG_DSN)
    assert type(again.error) is psycopg.errors.UniqueViolation
    assert str(again.error) == str(recorded.error)
    assert isinstance(again.error, psycopg.IntegrityError)
    assert_same_calls(recorded, again)


@replay.traced
def pg_report(dsn: str, table: str, spaced: bool) -> list[Any]:
    with psycopg.connect(dsn) as connection:
        if spaced:
            sql = f"""
                SELECT  name
                  FROM  {table}
                 WHERE  id =  %s
            """
        else:
            sql = f"SELECT name FROM {table} WHERE id = %s"
        return connection.execute(sql, (2,)).fetchall()


def test_statements_match_whatever_their_whitespace(pg_table: str) -> None:
    recorded = run(pg_report, PG_DSN, pg_table, False)
    again = replayed(recorded.db_calls, pg_report, DEAD_PG_DSN, pg_table, True)
    assert again.value == recorded.value == [("bob",)]
    assert_same_calls(recorded, again)


def test_an_unrecorded_statement_is_refused_even_if_the_application_swallows_it(
        pg_table: str) -> None:
    recorded = run(pg_report, PG_DSN, pg_table, False)

    @replay.traced
    def changed(dsn: str) -> str:
        with psycopg.connect(dsn) as connection:
            try:
                connection.execute(f"SELECT name, id FROM {pg_table} WHERE id = %s", (2,))
            except ConnectionError as exc:  # the application hides the failure
                return str(exc)
        return "ran"

    again = replayed(recorded.db_calls, changed, DEAD_PG_DSN)
    assert again.served is not None
    assert len(again.served.unrecorded) == 1
    message = again.value
    assert "unrecorded database call" in message
    assert f"SELECT name, id FROM {pg_table} WHERE id = %s" in message
    assert f"SELECT name FROM {pg_table} WHERE id = %s" in message  # what was recorded instead
    assert again.served.unused == [  # the commit on leaving ``with`` still happened
        f"postgresql execute 'SELECT name FROM {pg_table} WHERE id = %s' (line 1)"]
    refused = again.db_calls[0]
    assert refused["error_type"] == "UnrecordedCall"  # the replay's own event says so


def test_other_parameters_are_refused_and_named(pg_table: str) -> None:
    recorded = run(pg_report, PG_DSN, pg_table, False)

    @replay.traced
    def other_id(dsn: str) -> Any:
        with psycopg.connect(dsn) as connection:
            return connection.execute(f"SELECT name FROM {pg_table} WHERE id = %s",
                                      (3,)).fetchall()

    again = replayed(recorded.db_calls, other_id, DEAD_PG_DSN)
    assert isinstance(again.error, UnrecordedCall)
    assert 'with parameters {"$type":"tuple","items":[3]}' in str(again.error)
    assert 'recorded with other parameters: {"$type":"tuple","items":[2]} (line 1)' in str(
        again.error)


def test_fetching_rows_production_never_fetched_is_refused(pg_table: str) -> None:
    @replay.traced
    def first_only(dsn: str, everything: bool) -> Any:
        with psycopg.connect(dsn) as connection:
            cursor = connection.execute(f"select id from {pg_table} order by id")
            return cursor.fetchall() if everything else cursor.fetchone()

    recorded = run(first_only, PG_DSN, False)
    again = replayed(recorded.db_calls, first_only, DEAD_PG_DSN, True)
    assert isinstance(again.error, UnrecordedCall)
    assert "row 2 was never fetched when this was recorded" in str(again.error)


# -- MariaDB ------------------------------------------------------------------------------

@replay.traced
def mysql_order(params: dict[str, Any], table: str) -> list[Any]:
    connection = pymysql.connect(**params)
    try:
        with connection.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(f"insert into {table} (name) values (%s)", ("cy",))
            new_id = cursor.lastrowid
            cursor.executemany(f"insert into {table} (name) values (%s)", [("d",), ("e",)])
            connection.commit()
            cursor.execute(f"select id, name from {table} order by id")
            first = cursor.fetchone()
            some = cursor.fetchmany(2)
            rest = cursor.fetchall()
            try:
                cursor.execute(f"insert into {table} (id, name) values (%s, %s)", (1, "dup"))
            except pymysql.err.IntegrityError as exc:
                error = (type(exc).__name__, exc.args)
            connection.rollback()
        with connection.cursor() as plain:
            plain.execute(f"select name from {table} where id = %s", (2,))
            tuples = plain.fetchall()
        return [new_id, first, list(some), list(rest), error, tuples]
    finally:
        connection.close()


def test_mysql_replays_after_the_table_is_dropped(my_table: str) -> None:
    recorded = run(mysql_order, MYSQL, my_table)
    assert recorded.error is None, recorded.error
    mysql_admin(f"drop table {my_table}")
    again = replayed(recorded.db_calls, mysql_order, DEAD_MYSQL, my_table)
    assert again.error is None, again.error
    assert again.value == recorded.value
    assert again.value[4][0] == "IntegrityError" and again.value[4][1][0] == 1062
    assert type(again.value[5]) is tuple  # a plain buffered cursor's fetchall gives a tuple
    assert_same_calls(recorded, again)


def test_a_mysql_integrity_error_is_raised_as_pymysql_err(my_table: str) -> None:
    @replay.traced
    def duplicate(params: dict[str, Any]) -> None:
        connection = pymysql.connect(**params)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"insert into {my_table} (id, name) values (1, 'x')")
        finally:
            connection.close()

    recorded = run(duplicate, MYSQL)
    again = replayed(recorded.db_calls, duplicate, DEAD_MYSQL)
    assert type(again.error) is pymysql.err.IntegrityError
    assert again.error.args == recorded.error.args  # type: ignore[union-attr]
    assert_same_calls(recorded, again)


# -- sqlite -------------------------------------------------------------------------------

@replay.traced
def sqlite_order(path: str) -> list[Any]:
    connection = sqlite3.connect(path)
    connection.executescript("create table t (id integer primary key, name text unique);")
    with connection:
        connection.executemany("insert into t (name) values (?)", [("ann",), ("bob",)])
    connection.row_factory = sqlite3.Row
    rows = [dict(row) for row in connection.execute("select * from t order by id")]
    connection.row_factory = None
    last = connection.execute("insert into t (name) values (?)", ("cy",)).lastrowid
    connection.rollback()
    try:
        with connection:
            connection.execute("insert into t (name) values ('ann')")
    except sqlite3.IntegrityError as exc:
        error = str(exc)
    count = connection.execute("select count(*) from t").fetchone()
    connection.close()
    return [rows, last, error, count]


def test_sqlite_replays_after_the_file_is_deleted(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    recorded = run(sqlite_order, str(path))
    assert recorded.error is None, recorded.error
    assert recorded.value == [[{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}], 3,
                              "UNIQUE constraint failed: t.name", (2,)]
    path.unlink()
    nowhere = tmp_path / "missing" / "shop.db"
    again = replayed(recorded.db_calls, sqlite_order, str(nowhere))
    assert again.error is None, again.error
    assert again.value == recorded.value
    assert not nowhere.parent.exists()
    assert_same_calls(recorded, again)


@replay.traced
def sqlite_keys(path: str, token: str) -> list[Any]:
    """Stores a credential as a parameter and reads it back; a literal holds a password too."""
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("create table keys (id integer primary key, value text)")
        connection.execute("insert into keys (value) values (?)", (token,))
    row = connection.execute(
        "select value, 'dsn?password=hunter2hunter2' as note from keys").fetchone()
    connection.close()
    return list(row)


def test_secret_text_in_database_calls_is_scrubbed_and_still_replays(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    token = "Bearer sk9f8d7a6s5d4f3g2h1"
    recorded = run(sqlite_keys, str(path), token)
    assert recorded.error is None, recorded.error
    assert recorded.value == [token, "dsn?password=hunter2hunter2"]
    written = orjson.dumps(recorded.db_calls).decode()
    assert "sk9f8d7a6s5d4f3g2h1" not in written and "hunter2hunter2" not in written
    insert, select = (call for call in recorded.db_calls if call["operation"] == "execute"
                      and call["statement"].startswith(("insert", "select")))
    assert insert["parameters"]["items"] == ["Bearer [REDACTED]"]
    assert "password=[REDACTED]" in select["statement"]
    assert select["rows"] == [["Bearer [REDACTED]", "dsn?password=[REDACTED]"]]
    path.unlink()
    # The live call holds the real token; replay scrubs it the same way to find the recording.
    again = replayed(recorded.db_calls, sqlite_keys, str(path), token)
    assert again.error is None, again.error
    assert again.value == ["Bearer [REDACTED]", "dsn?password=[REDACTED]"]
    assert not path.exists()
    assert_same_calls(recorded, again)


@replay.traced
def sqlite_accounts(path: str, token: str) -> int:
    """Binds a credential positionally to a column named for it (no secret shape at all)."""
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("create table accounts (owner text, api_token text)")
        connection.execute("insert into accounts (owner, api_token) values (?, ?)",
                           ("ann", token))
        cursor = connection.execute("update accounts set api_token = ? where owner = ?",
                                    (token + "2", "ann"))
    connection.close()
    return int(cursor.rowcount)


def test_parameters_bound_to_secret_columns_are_redacted_and_still_replay(
        tmp_path: Path) -> None:
    path = tmp_path / "accounts.db"
    token = "Zq7c0ffee5ecret"
    recorded = run(sqlite_accounts, str(path), token)
    assert recorded.error is None, recorded.error
    assert token not in orjson.dumps(recorded.db_calls).decode()
    insert, update = (call for call in recorded.db_calls
                      if call["statement"].startswith(("insert", "update")))
    assert insert["parameters"]["items"] == ["ann", {"$type": "redacted", "rule": "key"}]
    assert update["parameters"]["items"] == [{"$type": "redacted", "rule": "key"}, "ann"]
    path.unlink()
    # The live calls bind the real token; replay redacts them by column to find the recording.
    again = replayed(recorded.db_calls, sqlite_accounts, str(path), token)
    assert again.error is None, again.error
    assert again.value == 1
    assert not path.exists()
    assert_same_calls(recorded, again)


# -- SQLAlchemy ---------------------------------------------------------------------------

@replay.traced
def sa_order(url: str, table: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"update {table} set name = :n where id = :i"),
                               [{"n": "anne", "i": 1}, {"n": "bobby", "i": 2}])
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(f"select id, name, amount from {table} order by id")).all()
            try:
                connection.execute(sa.text(f"insert into {table} (id) values (3)"))
            except sa.exc.IntegrityError as exc:
                error = type(exc.orig).__name__
            connection.rollback()
        return [[tuple(row) for row in rows], error]
    finally:
        engine.dispose()


def test_a_sqlalchemy_engine_over_psycopg_replays(pg_table: str) -> None:
    recorded = run(sa_order, PG_URL, pg_table)
    assert recorded.error is None, recorded.error
    pg_admin(f"drop table {pg_table}")
    dead_url = "postgresql+psycopg://nobody@127.0.0.1:1/nowhere"
    again = replayed(recorded.db_calls, sa_order, dead_url, pg_table)
    assert again.error is None, again.error
    assert again.value == recorded.value
    assert again.value[1] == "UniqueViolation"
    assert_same_calls(recorded, again)


# -- what replay refuses to do --------------------------------------------------------------

def test_bad_recorded_data_names_the_event_and_the_field(pg_table: str) -> None:
    recorded = run(pg_report, PG_DSN, pg_table, False).db_calls
    select = recorded[0]
    cases = [
        ({k: v for k, v in select.items() if k != "rows"}, "line 1", "'rows'", "missing"),
        ({**select, "rowcount": "1"}, "line 1", "'rowcount'", "expected an integer, got str"),
        ({**select, "rows": [["bob", "extra"]]}, "line 1", "'rows[0]'",
         "has 2 values but the description has 1 columns"),
        ({**select, "rows": [{"$type": "object", "class": "app:Row"}]}, "line 1", "'rows[0]'",
         "app:Row"),
        ({**select, "description": "name"}, "line 1", "'description'", "list of column names"),
        ({**select, "error_type": "system", "error_module": "os"}, "line 1", "'error_type'",
         "os.system is not an exception of psycopg.errors"),
        ({**select, "operation": 7}, "line 1", "'operation'", "expected a string, got int"),
    ]
    for bad, line, field, problem in cases:
        with pytest.raises(BadDatabaseRecording) as caught:
            serve_database([bad, recorded[1]])
        message = str(caught.value)
        assert line in message and field in message and problem in message, message
    unnumbered = {k: v for k, v in select.items() if k not in ("rows", "_line")}
    with pytest.raises(BadDatabaseRecording, match="position 1 of the recorded db_call"):
        serve_database([unnumbered])


def test_values_cut_short_at_capture_are_refused_not_served(pg_table: str) -> None:
    recorded = run(pg_report, PG_DSN, pg_table, False).db_calls
    recorded[0]["rows"] = [[{"$type": "str", "head": "bo", "len": 5000, "truncated": True}]]
    again = replayed(recorded, pg_report, DEAD_PG_DSN, pg_table, False)
    assert isinstance(again.error, UnrecordedCall)
    assert "was truncated at capture" in str(again.error)
    assert "line 1" in str(again.error)


def test_nothing_is_served_after_serving_ends_and_drivers_are_restored(pg_table: str) -> None:
    recorded = run(pg_report, PG_DSN, pg_table, False).db_calls
    before = (psycopg.connect, psycopg.Connection.connect, pymysql.connect, sqlite3.connect)
    with serve_database(recorded):
        connection = psycopg.connect(DEAD_PG_DSN)
        assert isinstance(connection, psycopg.Connection)
        with pytest.raises(RuntimeError, match="already active"), serve_database([]):
            pass
    assert (psycopg.connect, psycopg.Connection.connect, pymysql.connect,
            sqlite3.connect) == before
    with psycopg.connect(PG_DSN) as real:  # real cursors are built as usual after a replay
        assert real.cursor().execute("select 1").fetchone() == (1,)
    with pytest.raises(ReplayConnectionUsedOutside, match="after serve_database"):
        connection.execute("SELECT 1")


def test_served_calls_report_even_when_capture_was_never_installed(pg_table: str) -> None:
    recorded = run(pg_report, PG_DSN, pg_table, False)
    sink = replay.MemorySink()
    replay.configure(sink=sink)
    try:
        with serve_database(recorded.db_calls) as served, replay.request_scope("bare"):
            value = pg_report(DEAD_PG_DSN, pg_table, False)
    finally:
        replay.shutdown()
    assert value == [("bob",)] and served.unrecorded == []
    events = [orjson.loads(line) for line in sink.lines]
    assert comparable([e for e in events if e["event_type"] == "db_call"]) == comparable(
        recorded.db_calls)


def test_replaying_twice_gives_the_same_events(tmp_path: Path) -> None:
    recorded = run(sqlite_order, str(tmp_path / "a.db"))
    os.remove(tmp_path / "a.db")
    first = replayed(recorded.db_calls, sqlite_order, str(tmp_path / "a.db"))
    second = replayed(recorded.db_calls, sqlite_order, str(tmp_path / "a.db"))
    assert comparable(first.db_calls) == comparable(second.db_calls)
    assert first.value == second.value == recorded.value


# -- through the replay engine, from a trace file -------------------------------------------

SHOP = '''
import orjson
import psycopg
import redis

import pytest_replay as replay


@replay.traced
def checkout(dsn: str, table: str, order_id: int, redis_port: int) -> dict[str, object]:
    cache = redis.Redis(port=redis_port, socket_connect_timeout=1)
    cached = cache.get(f"{table}:{order_id}")
    with psycopg.connect(dsn) as connection:
        row = connection.execute(f"select name, amount from {table} where id = %s",
                                 (order_id,)).fetchone()
        connection.execute(f"update {table} set amount = amount + 1 where id = %s", (order_id,))
    cache.set(f"{table}:{order_id}", row[0])
    return {"name": row[0], "amount": str(row[1]), "cached": cached}
'''


def test_the_engine_replays_a_trace_file_twice_without_the_databases(
        pg_table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_replay.capture.db import install_db_capture, uninstall_db_capture
    from pytest_replay.config import ReplayConfig
    from pytest_replay.model import load_trace
    from pytest_replay.replay.engine import ReplayEngine
    from tests.external.db_servers import REDIS_PORT, require

    require("Redis", REDIS_PORT)
    package = tmp_path / "dbshop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "orders.py").write_text(SHOP)
    monkeypatch.syspath_prepend(str(tmp_path))
    from dbshop import orders  # type: ignore[import-not-found]

    recorded = run(orders.checkout, PG_DSN, pg_table, 2, REDIS_PORT)
    assert recorded.error is None, recorded.error
    trace = tmp_path / "incident.jsonl"
    trace.write_bytes(b"".join(orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE)
                               for e in recorded.events))
    pg_admin(f"drop table {pg_table}")
    import redis

    redis.Redis(port=REDIS_PORT).delete(f"{pg_table}:2")
    root = load_trace(trace).roots[0]
    engine = ReplayEngine(ReplayConfig(targets=("dbshop",)))
    install_db_capture()  # the engine's part of the contract: capture runs during replay
    try:
        for _ in range(2):
            result = engine.replay(root)
            assert result.status == "passed", result.message
            replayed_calls = [e for e in result.replayed if e["event_type"] == "db_call"]
            assert len(replayed_calls) == 5
    finally:
        uninstall_db_capture()
