"""The child process that reads a SQLite store through ADBC for a build.

ADBC's SQLite driver carries its own copy of the SQLite library. Two copies of SQLite in
one process do not share their bookkeeping of POSIX locks (SQLite's "How To Corrupt"
notes, 2.2.1), so the build never loads it: :mod:`reelset.dataset.read` starts this file
as a separate Python process, which has its own locks, and reads what it sends back.

This module imports only the standard library, pyarrow and the ADBC driver (not reelset:
the package's imports would cost the child a second), and is run as a script::

    python -P .../reelset/dataset/read_child.py

The protocol:

- stdin: one JSON line ``{"database", "busy_timeout_ms", "batch_rows", "parent",
  "queries": [[name, sql, arrow schema (IPC bytes, base64)], ...]}``. stdin then stays
  open; its end means the parent is gone, and the child exits at once.
- stdout: for each query, in order, one Arrow IPC stream of its rows in the query's
  schema, batch by batch as the driver produces them. Every query runs in one read-only
  transaction: one snapshot of the WAL, pinned by the first query.
- stderr and the exit status: 0 when every stream was written; otherwise one line on
  stderr and :data:`EXIT_STORE` (the store could not be read), :data:`EXIT_UNAVAILABLE`
  (the driver cannot be imported: the parent reads another way) or :data:`EXIT_INTERNAL`
  (a bug).

The child dies with its parent: on Linux the kernel kills it when the parent dies
(``PR_SET_PDEATHSIG``), elsewhere the end of stdin does; a write to a closed pipe ends it
too. It ignores SIGINT: the parent decides what a Ctrl-C means, and stops the child.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import threading
from typing import IO, Any
from urllib.parse import quote

EXIT_STORE = 1
EXIT_UNAVAILABLE = 3
EXIT_INTERNAL = 4
NULL_MASK = "__nulls:"
"""On SQLite a nullable text or real column ``c`` is read as ``COALESCE(c, filler)``, and
one more column, named this prefix + the names of those columns (comma-separated), holds
a bit per column (bit i: the i-th column is NULL in this row). See
:func:`reelset.dataset.read._adbc_sql`."""


def from_wire(batch: Any, arrow_schema: Any, *, exact: bool = True) -> Any:
    """A batch as ADBC returned it -> a batch of ``arrow_schema`` (nulls restored, cast).

    With ``exact`` every column ends up in Arrow's own memory pool, exactly sized: the
    driver's buffers grow by doubling, and keeping them would hold up to twice the data.
    (The child needs no copy: the IPC writer sends only the bytes in use.)
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    names = batch.schema.names
    mask_name = next((name for name in names if name.startswith(NULL_MASK)), None)
    flagged = mask_name[len(NULL_MASK):].split(",") if mask_name else []
    arrays = []
    for field in arrow_schema:
        values = batch.column(names.index(field.name))
        copied = False
        if field.name in flagged:
            bit = 1 << flagged.index(field.name)
            mask = batch.column(names.index(mask_name))
            values = _with_validity(values, pc.equal(pc.bit_wise_and(mask, bit), 0))
        if values.type != field.type:
            values = pc.cast(values, field.type)
            copied = True
        arrays.append(values if copied or not exact else pa.concat_arrays([values]))
    return pa.RecordBatch.from_arrays(arrays, schema=arrow_schema)


def _with_validity(values: Any, valid: Any) -> Any:
    """``values`` (no nulls) with the nulls where ``valid`` is false; the data is not copied."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pc.all(valid).as_py():
        return values
    if values.offset or valid.offset or values.null_count:
        return pc.if_else(valid, values, pa.scalar(None, values.type))
    return pa.Array.from_buffers(
        values.type, len(values), [valid.buffers()[1], *values.buffers()[1:]]
    )


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else exc.__class__.__name__


def _fail(message: str, status: int) -> None:
    sys.stderr.write(message.replace("\n", " ") + "\n")
    sys.stderr.flush()
    os._exit(status)


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux); then make sure the
    parent did not die before that was asked."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # the end of stdin still stops the child
    if os.getppid() != parent:
        os._exit(EXIT_STORE)


def _watch_stdin(stdin: IO[bytes]) -> None:
    """Exit at once when stdin ends: the parent closed it or died."""
    while stdin.read(65536):
        pass
    os._exit(EXIT_STORE)


def read(request: dict[str, Any], out: IO[bytes]) -> None:
    """Run the request's queries in one read-only transaction; write each as an IPC stream."""
    import adbc_driver_manager
    import adbc_driver_sqlite
    import pyarrow as pa

    path = request["database"]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"unable to open database file {path}: no such file")
    # On an error nothing is closed: the process ends at once (and the driver refuses to
    # close a connection with a statement open).
    database = adbc_driver_sqlite.connect(f"file:{quote(path)}?mode=ro")
    conn = adbc_driver_manager.AdbcConnection(database)
    _run(conn, request, out, adbc_driver_manager, pa)
    conn.close()
    database.close()


def _run(conn: Any, request: dict[str, Any], out: IO[bytes], adbc: Any, pa: Any) -> None:
    def statement(sql: str) -> Any:
        stmt = adbc.AdbcStatement(conn)
        stmt.set_options(**{"adbc.sqlite.query.batch_rows": str(request["batch_rows"])})
        stmt.set_sql_query(sql)
        return stmt

    stmt = statement(f"PRAGMA busy_timeout = {int(request['busy_timeout_ms'])}")
    handle, _ = stmt.execute_query()
    pa.RecordBatchReader._import_from_c(handle.address).read_all()
    stmt.close()
    # Autocommit off: the driver opens a (deferred) transaction, and the first query pins
    # the WAL snapshot every later query sees.
    conn.set_autocommit(False)
    options = pa.ipc.IpcWriteOptions(use_threads=False)
    for _name, sql, encoded in request["queries"]:
        arrow_schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded)))
        stmt = statement(sql)
        handle, _ = stmt.execute_query()
        with (
            pa.RecordBatchReader._import_from_c(handle.address) as reader,
            pa.ipc.new_stream(out, arrow_schema, options=options) as writer,
        ):
            for batch in reader:
                writer.write_batch(from_wire(batch, arrow_schema, exact=False))
        stmt.close()
    conn.rollback()


def main() -> None:
    """The child's entry point (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin = sys.stdin.buffer
    try:
        request = json.loads(stdin.readline())
    except ValueError as exc:
        _fail(f"bad request: {_one_line(exc)}", EXIT_STORE)
    _die_with_parent(int(request["parent"]))
    threading.Thread(target=_watch_stdin, args=(stdin,), daemon=True).start()
    try:
        import adbc_driver_manager
        import adbc_driver_sqlite  # noqa: F401
        import pyarrow
    except ImportError as exc:
        _fail(f"the ADBC SQLite driver cannot be loaded: {_one_line(exc)}", EXIT_UNAVAILABLE)
    out = sys.stdout.buffer
    try:
        read(request, out)
        out.flush()
    except BrokenPipeError:
        os._exit(EXIT_STORE)  # the parent stopped reading: nothing to tell it
    except (adbc_driver_manager.Error, pyarrow.ArrowException, OSError) as exc:
        _fail(_one_line(exc), EXIT_STORE)
    except Exception as exc:
        _fail(f"{exc.__class__.__name__}: {_one_line(exc)}", EXIT_INTERNAL)
    os._exit(0)


if __name__ == "__main__":
    main()
