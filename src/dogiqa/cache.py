"""A SQLite store of raw model outputs and finished image records, so runs resume and re-aggregate.

Two tables:

- ``raw``: what the model said for one region (generated text and candidate log-probabilities), keyed by
  :class:`CacheKey` = (image content hash, region box, crop mode, model id/revision, prompt/standard,
  readout candidates). Readouts can be recomputed from it without the model.
- ``images``: each finished image's result record (JSON), keyed by (run key, image hash). A resumed run skips
  those images; ``--reaggregate`` recomputes final scores for another aggregation preset from them.

A third table, ``files``, memoises (resolved path, size, mtime_ns) -> content hash, so that resuming a run
does not read every image again (:meth:`RawCache.file_hashes`); a file whose size or mtime changed is hashed
again.

Crash safety: WAL journal, one transaction per ``put_*`` call. A process killed with SIGKILL loses at most the
transaction in flight; committed rows are intact and the file is never corrupt (SQLite's guarantee; tested).
``synchronous=NORMAL`` is durable against process death; only a power loss may drop the last transactions.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dogiqa.backends.base import RawOutput

SCHEMA_VERSION = 1
_CHUNK = 500  # keys per SELECT ... IN (...) (SQLite's default limit on variables is 32766)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS raw (
    key TEXT PRIMARY KEY,
    image_hash TEXT NOT NULL,
    box TEXT NOT NULL,
    crop_mode TEXT NOT NULL,
    model_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    candidates TEXT NOT NULL,
    text TEXT,
    logprobs TEXT,
    error TEXT,
    meta TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS raw_image ON raw (image_hash);
CREATE TABLE IF NOT EXISTS runs (run_key TEXT PRIMARY KEY, config TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    run_key TEXT NOT NULL,
    image_hash TEXT NOT NULL,
    path TEXT,
    record TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (run_key, image_hash)
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL
);
"""


class CacheError(RuntimeError):
    """The cache file cannot be opened or is not a dogiqa cache."""


def image_hash(source: str | Path | bytes) -> str:
    """SHA-256 (first 32 hex digits) of an image file's bytes, or of the given bytes."""
    h = hashlib.sha256()
    if isinstance(source, bytes | bytearray | memoryview):
        h.update(source)
    else:
        with open(source, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:32]


def _file_stat(path: str | Path | None) -> tuple[str, int, int] | None:
    """(resolved path, size, mtime_ns) of a regular file, or None."""
    if path is None:
        return None
    try:
        resolved = Path(path).resolve()
        st = resolved.stat()
    except (OSError, RuntimeError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return str(resolved), st.st_size, st.st_mtime_ns


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def run_key(config: Mapping[str, Any], exclude: Iterable[str] = ("aggregation",)) -> str:
    """A stable key for a run configuration, ignoring the fields that do not change model outputs."""
    skip = set(exclude)
    kept = {k: v for k, v in config.items() if k not in skip}
    return hashlib.sha256(_canonical(kept).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CacheKey:
    """Identifies one model call: these pixels, this model, this prompt, these candidate tokens.

    ``box`` is (x0, y0, x1, y1) in full-image pixels (the whole image for the global call); ``crop_mode``
    "global", "box" (bounding-box crop, the paper) or "mask" (outside-mask pixels blacked out); ``prompt``
    the full prompt text (e.g. ``Prompt.text``) or a standard's name + levels; ``candidates`` the readout's
    tokens whose log-probabilities were asked for. ``extra`` holds anything else that changes the output.
    """

    image_hash: str
    box: tuple[int, int, int, int]
    crop_mode: str
    model_id: str
    prompt: str
    candidates: tuple[str, ...] = ()
    extra: str = ""

    @property
    def digest(self) -> str:
        fields = [self.image_hash, list(self.box), self.crop_mode, self.model_id, self.prompt]
        fields += [list(self.candidates), self.extra]
        return hashlib.sha256(_canonical(fields).encode()).hexdigest()


def _digest(key: CacheKey | str) -> str:
    return key if isinstance(key, str) else key.digest


def _key_columns(key: CacheKey | str) -> tuple[str, str, str, str, str, str]:
    """The descriptive columns of a raw row (empty for a bare digest)."""
    if isinstance(key, str):
        return ("", "[]", "", "", "", "[]")
    box, cands = _canonical(list(key.box)), _canonical(list(key.candidates))
    return (key.image_hash, box, key.crop_mode, key.model_id, key.prompt, cands)


class RawCache:
    """SQLite cache of raw outputs and finished image records (see module docstring).

    >>> cache = RawCache(":memory:")
    >>> key = CacheKey("abc", (0, 0, 8, 8), "global", "tiny@0", "prompt", ("1", "2"))
    >>> cache.put_many({key: RawOutput(text="2", logprobs={"1": -1.5, "2": -0.3})})
    1
    >>> cache.get_many([key])[key].text
    '2'
    """

    def __init__(self, path: str | Path, timeout: float = 60.0):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._check_version()
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"cannot open the cache {self.path}: {exc} (delete it or choose another)") from None

    # ------------------------------------------------------------ housekeeping

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise CacheError(f"{self.path} has cache schema {row[0]}, this dogiqa needs {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RawCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def integrity_ok(self) -> bool:
        """SQLite's own full integrity check."""
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def _write(self, sql: str, rows: list[tuple]) -> int:
        """One transaction: all rows or none."""
        if not rows:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(sql, rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return len(rows)

    # ------------------------------------------------------------ raw outputs

    def get_many(self, keys: Iterable[CacheKey | str]) -> dict[Any, RawOutput]:
        """The cached outputs of those keys that are present, keyed as given.

        Keys are :class:`CacheKey` objects or ready-made digests (strings, e.g. ``MLLMScorer.cache_key``).
        """
        by_digest = {_digest(k): k for k in keys}
        sql = "SELECT key, text, logprobs, error, meta FROM raw WHERE key IN ({marks})"
        return {
            by_digest[digest]: RawOutput(
                text=text,
                logprobs=None if logprobs is None else json.loads(logprobs),
                error=error,
                meta=json.loads(meta) if meta else {},
            )
            for digest, text, logprobs, error, meta in self._rows_in(sql, list(by_digest))
        }

    def _rows_in(self, sql: str, values: list[Any], *params: Any) -> list[tuple]:
        """Rows of ``sql``, whose ``{marks}`` is an ``IN`` list of ``values``, asked ``_CHUNK`` values at a time
        (SQLite limits the variables of one statement); ``params`` come before the list."""
        rows: list[tuple] = []
        with self._lock:
            for i in range(0, len(values), _CHUNK):
                chunk = values[i : i + _CHUNK]
                rows += self._db.execute(sql.format(marks=",".join("?" * len(chunk))), [*params, *chunk]).fetchall()
        return rows

    def put_many(self, outputs: Mapping[CacheKey | str, RawOutput], keep_errors: bool = False) -> int:
        """Store outputs in one transaction; outputs with an error are skipped unless ``keep_errors``
        (errors are often transient: out of memory, a server timeout). Returns the number stored."""
        now = time.time()
        rows = [
            (
                _digest(k),
                *_key_columns(k),
                o.text,
                None if o.logprobs is None else _canonical(o.logprobs),
                o.error,
                _canonical(o.meta) if o.meta else None,
                now,
            )
            for k, o in outputs.items()
            if keep_errors or o.error is None
        ]
        return self._write("INSERT OR REPLACE INTO raw VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def count_raw(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM raw").fetchone()[0]

    # ------------------------------------------------------------ finished images

    def register_run(self, key: str, config: Mapping[str, Any]) -> None:
        """Remember the configuration behind a run key (for listing and re-aggregation)."""
        self._write("INSERT OR IGNORE INTO runs VALUES (?,?,?)", [(key, _canonical(config), time.time())])

    def run_config(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT config FROM runs WHERE run_key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def runs(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT run_key, config FROM runs ORDER BY created").fetchall()
        return {k: json.loads(c) for k, c in rows}

    def put_images(self, key: str, records: Iterable[tuple[str, str | None, str]]) -> int:
        """Store finished images in one transaction: (image hash, path, record JSON) tuples."""
        now = time.time()
        rows = [(key, h, path, record, now) for h, path, record in records]
        return self._write("INSERT OR REPLACE INTO images VALUES (?,?,?,?,?)", rows)

    def put_image(self, key: str, image_hash: str, record_json: str, path: str | None = None) -> None:
        self.put_images(key, [(image_hash, path, record_json)])

    def get_image(self, key: str, image_hash: str) -> str | None:
        """The record JSON of a finished image, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM images WHERE run_key = ? AND image_hash = ?", (key, image_hash)
            ).fetchone()
        return None if row is None else row[0]

    def done(self, key: str) -> set[str]:
        """Hashes of the images finished under a run key."""
        with self._lock:
            rows = self._db.execute("SELECT image_hash FROM images WHERE run_key = ?", (key,)).fetchall()
        return {r[0] for r in rows}

    def get_images(self, key: str, hashes: Iterable[str]) -> dict[str, str]:
        """Image hash -> record JSON for those of ``hashes`` finished under a run key (one query per 500)."""
        sql = "SELECT image_hash, record FROM images WHERE run_key = ? AND image_hash IN ({marks})"
        return dict(self._rows_in(sql, list(dict.fromkeys(hashes)), key))

    # ------------------------------------------------------------ file hash memo

    def file_hashes(self, paths: Iterable[str | Path | None]) -> list[str | None]:
        """The content hash (:func:`image_hash`) of each file, None for a missing or unreadable one.

        Known files whose (resolved path, size, mtime_ns) did not change are not read; the others are hashed
        and remembered (one transaction)."""
        items = list(paths)
        stats: list[tuple[str, int, int] | None] = [_file_stat(p) for p in items]
        memo = self._memo([s[0] for s in stats if s])
        out: list[str | None] = []
        fresh = []
        for st in stats:
            if st is None:
                out.append(None)
            elif memo.get(st[0], (None, None, ""))[:2] == st[1:]:
                out.append(memo[st[0]][2])
            else:
                try:
                    digest = image_hash(st[0])
                except OSError:
                    out.append(None)
                    continue
                fresh.append((st[0], st[1], st[2], digest))
                memo[st[0]] = (st[1], st[2], digest)
                out.append(digest)
        self._write("INSERT OR REPLACE INTO files VALUES (?,?,?,?)", fresh)
        return out

    def _memo(self, resolved: list[str]) -> dict[str, tuple[int, int, str]]:
        sql = "SELECT path, size, mtime_ns, hash FROM files WHERE path IN ({marks})"
        return {path: (size, mtime, digest) for path, size, mtime, digest in self._rows_in(sql, resolved)}

    def images(self, key: str) -> Iterator[tuple[str, str | None, str]]:
        """(image hash, path, record JSON) of every image finished under a run key, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT image_hash, path, record FROM images WHERE run_key = ? ORDER BY created, rowid",
                (key,),
            ).fetchall()
        yield from rows
