"""A sweep's journal: each finished setting is appended to OUT/sweep_progress.jsonl as soon as it
is measured, so a sweep run again with the same arguments skips what is already done.

The first line says what the rows were measured on: the model, the weights (a hash of their
values), the images (a hash of the files' names and sizes), the score and the settings that change
a measurement.  A journal made on something else is never reused: the sweep stops with one line
that names the difference.  A row is reused only for the very same token-reduction settings (a
changed grid reuses the settings it still has and measures the rest); a last line cut short by a
kill is dropped and that setting measured again."""
import hashlib
import json
import os
from typing import Dict, List

from ..errors import PPTMSError

FILE_NAME = "sweep_progress.jsonl"


class SweepJournalError(PPTMSError, ValueError):
    """A journal that belongs to another sweep or cannot be read."""


def weights_fingerprint(state) -> str:
    """sha256 of parameter names, shapes and values (state: name -> np.ndarray)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        array = state[name]
        digest.update(("%s %s %s;" % (name, array.shape, array.dtype)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def files_fingerprint(paths: List[str]) -> str:
    """sha256 of the files' paths and sizes."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(("%s %d;" % (os.path.abspath(path), os.path.getsize(path))).encode())
    return digest.hexdigest()[:16]


def setting_key(token_reduction: dict) -> str:
    """The identity of one sweep setting: its whole token_reduction section."""
    return json.dumps(token_reduction, sort_keys=True)


class SweepJournal:
    """Rows of finished settings by setting_key, read from and appended to `path`."""

    def __init__(self, path: str, identity: Dict):
        self.path = path
        self.identity = identity
        self.rows: Dict[str, dict] = {}
        self.notes: List[str] = []
        if os.path.exists(path):
            self._read()
        else:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            _write_lines(path, [{"journal": self.identity}], "w")

    def _read(self):
        with open(self.path, encoding="utf-8") as handle:
            *lines, tail = handle.read().split("\n")  # every record ends with "\n"
        records = []
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict) or (number > 1 and not {"key", "row"} <= set(record)):
                raise SweepJournalError("%s line %d is not a journal record: the journal is damaged; delete it or "
                                        "use another --out" % (self.path, number))
            records.append(record)
        if not records or "journal" not in records[0]:
            raise SweepJournalError("%s does not start with a sweep journal header; delete it or use another "
                                    "--out" % self.path)
        differences = [key for key in sorted(set(self.identity) | set(records[0]["journal"]))
                       if self.identity.get(key) != records[0]["journal"].get(key)]
        if differences:
            key = differences[0]
            raise SweepJournalError(
                "%s holds a sweep of another %s (%s there, %s now); delete it or use another --out to start "
                "fresh" % (self.path, key, records[0]["journal"].get(key), self.identity.get(key)))
        if tail:  # a record without its newline: the run was killed while writing it
            self.notes.append("dropped the last line of %s, cut short; that setting is measured again" % self.path)
            self._rewrite(records)
        self.rows = {record["key"]: record["row"] for record in records[1:]}

    def _rewrite(self, records):
        """The journal as `records`, replaced atomically (a kill meanwhile leaves the old file)."""
        _write_lines(self.path + ".tmp", records, "w")
        os.replace(self.path + ".tmp", self.path)

    def append(self, key: str, row: dict):
        self.rows[key] = row
        _write_lines(self.path, [{"key": key, "row": row}], "a")


def _write_lines(path: str, records, mode: str):
    """One JSON record per line, flushed to disk before returning."""
    with open(path, mode, encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
