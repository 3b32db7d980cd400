"""Results history: every run/eval appends its result records to one SQLite file.

Where: `--history PATH` > `$MATBENCH_HISTORY` > one file per project (the git top-level of the current directory,
else the directory): `~/.local/share/matbench/projects/<name>-<hash>/history.db` (XDG_DATA_HOME honoured);
`--no-history` or MATBENCH_HISTORY=off turns it off. SQLite in WAL mode with a busy timeout, each append one
`BEGIN IMMEDIATE` transaction, so several processes (parallel CI jobs, torchrun ranks are not involved: only
rank 0 appends) can append at the same time.

A row keeps the whole metrics.json (so a record can be rebuilt and gated against), the job key, a protocol id
(hash of the protocol fields that must agree for numbers to be compared), the git commit and dirty flag of the
directory the command ran from, and the sha256 of the record: appending the same record twice (a resumed run
that only reused finished jobs, an import repeated) adds nothing.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import sqlite3
import subprocess
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matbench.entries import entry_for, job_field, job_resolution
from matbench.errors import Hint, InputError, SpecError
from matbench.metrics import METRIC_INFO
from matbench.results import PROTOCOL_FIELDS, MetricValue, ResultRecord, check_result_json, find_records

ENV = "MATBENCH_HISTORY"
OFF_VALUES = ("off", "none", "0", "")
SCHEMA_VERSION = 1
HISTORY_HINTS = (Hint("--history", "or give another history file with --history"),)

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS records (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sha256 TEXT NOT NULL UNIQUE,
  created TEXT NOT NULL,          -- when the result was computed (provenance.created, else the file's mtime)
  added TEXT NOT NULL,            -- when it entered the history
  source TEXT NOT NULL,           -- run | eval | import
  path TEXT,                      -- the metrics.json it came from
  dataset TEXT, maskset TEXT, model TEXT, resolution INTEGER, sample INTEGER,
  protocol_id TEXT NOT NULL,
  smoke INTEGER NOT NULL,
  git_commit TEXT, git_dirty INTEGER, cwd TEXT,
  record TEXT NOT NULL            -- the full metrics.json
);
CREATE INDEX IF NOT EXISTS records_job ON records (dataset, maskset, model, resolution, sample, created);
CREATE TABLE IF NOT EXISTS metrics (
  record_id INTEGER NOT NULL REFERENCES records(id),
  name TEXT NOT NULL, value REAL, ci_low REAL, ci_high REAL, n INTEGER,
  PRIMARY KEY (record_id, name)
);
"""


def project_root(directory: str | os.PathLike | None = None) -> Path:
    """The project a command runs in: the git top-level of `directory` (cwd), else that directory itself."""
    cwd = Path(directory or os.getcwd()).resolve()
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=str(cwd), capture_output=True, text=True,
                             timeout=20)
    except (OSError, subprocess.SubprocessError):
        return cwd
    return Path(top.stdout.strip()).resolve() if top.returncode == 0 and top.stdout.strip() else cwd


def default_path(directory: str | os.PathLike | None = None) -> Path:
    """One history per project (git top-level, else the directory), so `check --baseline history:last` never
    gates against a record another project wrote on the same account: <data>/matbench/projects/<name>-<hash>/."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    root = project_root(directory)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", root.name).strip("-")[:40] or "root"
    return Path(base) / "matbench" / "projects" / f"{slug}-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}" \
        / "history.db"


def resolve_path(cli_path: str | None = None, disabled: bool = False) -> Path | None:
    """The history file to use, or None when history is off."""
    if disabled:
        return None
    if cli_path:
        return check_history_path(Path(cli_path).expanduser())
    env = os.environ.get(ENV)
    if env is not None:
        return None if env.strip().lower() in OFF_VALUES else check_history_path(Path(env).expanduser())
    return default_path()


def git_state(directory: str | os.PathLike | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git work tree containing `directory` (cwd), or (None, None) outside one."""
    cwd = str(directory or os.getcwd())
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                timeout=20)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit.stdout.strip(), (bool(status.stdout.strip()) if status.returncode == 0 else None)


def git_provenance(directory: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """{commit, dirty} of the work tree the command runs in, for a record's provenance (None outside one): a later
    `history import` of the record then stores the commit a live append stored."""
    commit, dirty = git_state(directory)
    return {"commit": commit, "dirty": dirty} if commit else None


def protocol_id(record: ResultRecord) -> str:
    """Short hash of the protocol fields: equal ids = numbers that may be compared."""
    blob = json.dumps({f: record.protocol.get(f) for f in PROTOCOL_FIELDS}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def record_sha(record: ResultRecord) -> str:
    return hashlib.sha256(json.dumps(record.to_json(), sort_keys=True, default=str).encode()).hexdigest()


def _job_key(record: ResultRecord) -> tuple[str, str, str, int | None, int]:

    model = entry_for(record).model if record.path else job_field(record, "model")
    return (job_field(record, "dataset"), job_field(record, "maskset"), model, job_resolution(record),
            int(record.job.get("sample") or 0))


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _created(record: ResultRecord) -> str:
    c = record.provenance.get("created")
    if isinstance(c, str) and c:
        return c
    if record.path is not None and record.path.exists():
        return _dt.datetime.fromtimestamp(record.path.stat().st_mtime, _dt.UTC).isoformat(timespec="seconds")
    return _now()


@dataclass
class HistoryRow:
    id: int
    created: str
    added: str
    source: str
    path: str | None
    dataset: str
    maskset: str
    model: str
    resolution: int | None
    sample: int
    protocol_id: str
    smoke: bool
    git_commit: str | None
    git_dirty: bool | None
    record: ResultRecord

    @property
    def job(self) -> str:
        s = f"{self.dataset}/{self.maskset}/{self.model}@{self.resolution}"
        return s + (f" sample {self.sample}" if self.sample else "")


class History:
    """One history database. Cheap to open; each method opens its own short connection."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = check_history_path(Path(path))

    def _connect(self, readonly: bool = False) -> sqlite3.Connection:
        if readonly:
            return self._connect_readonly()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Our own URI: the name is always a file, never re-read as a URI or ':memory:' by SQLite.
            con = sqlite3.connect(_file_uri(self.path), timeout=60.0, isolation_level=None, uri=True)
            con.execute("PRAGMA busy_timeout = 60000")
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
            if con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'metrics'").fetchone() \
                    is None:  # a new file: create the schema once (IF NOT EXISTS: two first writers may race)
                con.executescript("BEGIN IMMEDIATE;" + _DDL + "INSERT OR IGNORE INTO meta VALUES ('schema', '"
                                  + str(SCHEMA_VERSION) + "'); COMMIT;")
            row = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None or int(row[0]) > SCHEMA_VERSION:
                con.close()
                raise InputError(f"{self.path}: history schema {row[0] if row else 'unknown'} is not one this "
                                 f"matbench reads ({SCHEMA_VERSION}); use a newer matbench", hints=HISTORY_HINTS)
        except sqlite3.DatabaseError as e:
            raise InputError(f"{self.path}: cannot open the results history ({e})") from None
        return con

    def _connect_readonly(self) -> sqlite3.Connection:
        """Reading never writes: mode=ro, then immutable=1 when even the WAL index cannot be made (a read-only
        file or folder, e.g. a history from a CI cache), so a history that cannot be written can still be read."""
        err: sqlite3.DatabaseError | None = None
        for query in ("mode=ro", "immutable=1"):
            try:
                con = sqlite3.connect(_file_uri(self.path) + "?" + query, timeout=60.0, isolation_level=None,
                                      uri=True)
                con.execute("PRAGMA busy_timeout = 60000")
                row = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            except sqlite3.DatabaseError as e:
                err = e
                continue
            if row is None or int(row[0]) > SCHEMA_VERSION:
                con.close()
                raise InputError(f"{self.path}: history schema {row[0] if row else 'unknown'} is not one this "
                                 f"matbench reads ({SCHEMA_VERSION}); use a newer matbench", hints=HISTORY_HINTS)
            return con
        raise InputError(f"{self.path}: cannot open the results history ({err})")

    def append(self, records: Iterable[ResultRecord], source: str, cwd: str | os.PathLike | None = None,
               git: tuple[str | None, bool | None] | None = None) -> int:
        """Add records (in one transaction); returns how many were new."""
        records = list(records)
        if not records:
            return 0
        commit, dirty = git if git is not None else git_state(cwd)
        cwd_s = str(Path(cwd or os.getcwd()).resolve())
        rows = []
        for r in records:
            g_commit, g_dirty = commit, dirty
            prov_git = r.provenance.get("git") if isinstance(r.provenance.get("git"), dict) else None
            if prov_git and prov_git.get("commit"):  # the record knows where it was made: trust it
                g_commit, g_dirty = prov_git.get("commit"), prov_git.get("dirty")
            ds, ms, model, res, sample = _job_key(r)
            rows.append((r, (record_sha(r), _created(r), _now(), source,
                             str(r.path.resolve()) if r.path else None, ds, ms, model, res, sample,
                             protocol_id(r), int(r.smoke), g_commit, None if g_dirty is None else int(g_dirty),
                             cwd_s, json.dumps(r.to_json(), default=str))))
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            added = 0
            for r, row in rows:
                cur = con.execute(
                    "INSERT OR IGNORE INTO records (sha256, created, added, source, path, dataset, maskset, "
                    "model, resolution, sample, protocol_id, smoke, git_commit, git_dirty, cwd, record) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
                if cur.rowcount != 1:
                    continue
                added += 1
                rid = cur.lastrowid
                con.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?)",
                                [(rid, m, v.value, v.ci_low, v.ci_high, v.n) for m, v in r.metrics.items()])
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()
        return added

    def rows(self, model: str | None = None, protocol: str | None = None, metric: str | None = None,
             dataset: str | None = None, maskset: str | None = None) -> list[HistoryRow]:
        """Rows in time order (created, then insertion). `protocol` matches the protocol id's prefix,
        'dataset/maskset@res', or a protocol name the record states (protocol.name); `metric` keeps rows that have
        that metric."""
        if not self.path.exists():
            return []
        sql = "SELECT * FROM records WHERE 1=1"
        args: list[Any] = []
        for col, val in (("model", model), ("dataset", dataset), ("maskset", maskset)):
            if val:
                sql += f" AND {col} = ?"
                args.append(val)
        if metric:
            sql += " AND id IN (SELECT record_id FROM metrics WHERE name = ?)"
            args.append(metric)
        sql += " ORDER BY created, id"
        con = self._connect(readonly=True)
        try:
            con.row_factory = sqlite3.Row
            raw = con.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise InputError(f"{self.path}: cannot read the results history ({e})") from None
        finally:
            con.close()
        out = []
        for r in raw:
            label = f"{r['dataset']}/{r['maskset']}@{r['resolution']}"
            rec = self._row_record(r)
            if protocol and not (r["protocol_id"].startswith(protocol) or label == protocol
                                 or protocol in (rec.protocol.get("name"), rec.protocol.get("protocol"))):
                continue
            out.append(HistoryRow(id=r["id"], created=r["created"], added=r["added"], source=r["source"],
                                  path=r["path"], dataset=r["dataset"], maskset=r["maskset"], model=r["model"],
                                  resolution=r["resolution"], sample=r["sample"], protocol_id=r["protocol_id"],
                                  smoke=bool(r["smoke"]), git_commit=r["git_commit"],
                                  git_dirty=None if r["git_dirty"] is None else bool(r["git_dirty"]), record=rec))
        return out


    def _row_record(self, r: sqlite3.Row) -> ResultRecord:
        where = f"{self.path}: history row #{r['id']}"  # the row, not the metrics.json it once came from
        try:
            d = json.loads(r["record"])
        except (TypeError, ValueError) as e:
            raise InputError(f"{where}: the stored record is not valid JSON ({e})") from None
        check_result_json(d, where)
        return ResultRecord.from_json(d, path=Path(r["path"]) if r["path"] else None)


def _file_uri(path: Path) -> str:
    return "file:" + urllib.parse.quote(str(path.resolve()))


def check_history_path(path: Path) -> Path:
    """Refuse names SQLite would not store in a file ('file:...?mode=memory', ':memory:'): a run would claim its
    records were added to a history that vanishes with the process."""
    s = str(path)
    if s.startswith("file:") or s == ":memory:" or not s.strip():
        raise SpecError(f"--history {s}: give the path of a history file, not an SQLite URI or in-memory "
                        "database (nothing would be kept)")
    return path


def append_results(paths: Sequence[str | os.PathLike], source: str, history_path: Path | None,
                   cwd: str | os.PathLike | None = None) -> int | None:
    """Append every record below `paths` to the history (None when history is off)."""
    if history_path is None:
        return None
    return History(history_path).append(find_records(paths), source=source, cwd=cwd)


# ----------------------------------------------------------------------------- baseline from the history

def parse_baseline(spec: str) -> tuple[str, int | None] | None:
    """'history:last' -> ('last', None); 'history:best' / 'history:best:5' -> ('best', None|5); else None."""
    if not spec.startswith("history:"):
        return None
    parts = spec.split(":")[1:]
    if parts == ["last"]:
        return "last", None
    if parts and parts[0] == "best" and len(parts) <= 2:
        if len(parts) == 1:
            return "best", None
        try:
            n = int(parts[1])
        except ValueError:
            n = 0
        if n < 1:
            raise SpecError(f"--baseline {spec}: N must be a positive integer")
        return "best", n
    raise SpecError(f"--baseline {spec}: expected history:last, history:best or history:best:N")


def baseline_records(history: History, current: Sequence[ResultRecord], mode: str,
                     n: int | None = None) -> tuple[list[ResultRecord], list[str]]:
    """A baseline record per job of `current`, built from the history; plus notes on what was chosen.

    Candidates are the history's records of the same job (dataset, mask set, model, resolution, sample),
    excluding the current record itself (a run appends before it is checked). `last`: the most recent one, of
    whatever protocol — a changed protocol then fails the gate (exit 2) instead of passing silently. `best[:N]`:
    among the N most recent candidates with the protocol and smoke flag of the most recent one, each metric's
    best value (direction-aware), with that record's interval."""
    rows = history.rows()
    by_job: dict[tuple[Any, ...], list[HistoryRow]] = {}
    for r in rows:
        by_job.setdefault((r.dataset, r.maskset, r.model, r.resolution, r.sample), []).append(r)
    out: list[ResultRecord] = []
    notes: list[str] = []
    for rec in current:
        key = _job_key(rec)
        own = record_sha(ResultRecord.from_json(rec.to_json()))
        cands = [r for r in by_job.get(key, []) if record_sha(r.record) != own]
        if not cands:
            continue
        latest = cands[-1]
        if mode == "last":
            nan = [m for m, v in latest.record.metrics.items() if v.value is not None and math.isnan(v.value)]
            if nan:  # a broken baseline, not a regression of the current run (issue 21)
                raise InputError(f"{history.path}: history row #{latest.id}: baseline metric '{nan[0]}' is NaN; "
                                 "gate against history:best or a baseline file instead")
            chosen = _baseline_copy(latest.record, rec)
            notes.append(f"{latest.job}: baseline = history #{latest.id} ({latest.created}, "
                         f"commit {_short(latest.git_commit, latest.git_dirty)})")
        else:
            pool = [r for r in cands if r.protocol_id == latest.protocol_id and r.smoke == latest.smoke]
            if n is not None:
                pool = pool[-n:]
            chosen = _baseline_copy(latest.record, rec)
            chosen.metrics = {}
            names = {m for r in pool for m in r.record.metrics}
            for m in sorted(names):
                vals = [(r, r.record.metrics[m]) for r in pool if m in r.record.metrics  # NaN is never "best"
                        and r.record.metrics[m].value is not None and not math.isnan(r.record.metrics[m].value)]
                if not vals:
                    continue
                hib = METRIC_INFO[m].higher_is_better if m in METRIC_INFO else False
                _, best = (max if hib else min)(vals, key=lambda rv: rv[1].value)
                chosen.metrics[m] = MetricValue.from_json(best.to_json())
            notes.append(f"{latest.job}: baseline = best of {len(pool)} history record(s) "
                         f"#{pool[0].id}..#{pool[-1].id}")
        out.append(chosen)
    return out, notes


def _baseline_copy(hist: ResultRecord, current: ResultRecord) -> ResultRecord:
    """The history record under the current record's path, so both get the same job key in the gate."""
    r = ResultRecord.from_json(hist.to_json(), path=current.path)
    r.job = dict(current.job) if _job_key(current) == _job_key(r) else r.job
    return r


def _short(commit: str | None, dirty: bool | None) -> str:
    if not commit:
        return "unknown"
    return commit[:10] + ("+dirty" if dirty else "")


# ----------------------------------------------------------------------------- listing

def table_rows(rows: Sequence[HistoryRow], metric: str | None = None) -> tuple[list[str], list[list[Any]]]:
    """Header and rows for `matbench history` (one row per record and metric)."""
    header = ["id", "created", "model", "dataset", "maskset", "resolution", "protocol", "smoke", "commit", "dirty",
              "metric", "value", "ci_low", "ci_high", "n", "source", "path"]
    out = []
    for r in rows:
        for m, v in r.record.metrics.items():
            if metric and m != metric:
                continue
            out.append([r.id, r.created, r.model, r.dataset, r.maskset, r.resolution, r.protocol_id, r.smoke,
                        r.git_commit, r.git_dirty, m, v.value, v.ci_low, v.ci_high, v.n, r.source, r.path])
    return header, out
