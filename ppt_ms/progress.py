"""Progress of a long run (images of an evaluation, settings of a sweep, rounds of a benchmark):
done out of the total, the rate and an ETA, on stderr so that results on stdout (JSON included)
stay clean.

On a terminal it is a bar (tqdm: a well-kept library that handles terminal widths and redraws);
to a file or a pipe, plain lines: one after the first step (an early ETA), then one at most
every INTERVAL seconds, and a final 100 % line.
`set_quiet(True)` (a tool's --quiet) turns it off."""
import sys
import time
from datetime import timedelta

INTERVAL = 10.0  # seconds between log lines when stderr is not a terminal
_settings = {"quiet": False}


def set_quiet(quiet: bool):
    _settings["quiet"] = bool(quiet)


def image_count(dataset) -> int:
    """How many images a pipeline of ppt_ms.data yields (its image_count; else batches x batch size)."""
    count = getattr(dataset, "image_count", None)
    return dataset.get_dataset_size() * dataset.get_batch_size() if count is None else count


def format_duration(seconds: float) -> str:
    """Seconds -> 'H:MM:SS'."""
    return str(timedelta(seconds=int(round(max(seconds, 0.0)))))


class Progress:
    """with Progress("eval", total=359, unit="images") as progress: progress.update(batch)."""

    def __init__(self, what: str, total: int, unit: str = "images", stream=None, interval: float = None,
                 quiet: bool = False):
        self.what, self.total, self.unit = what, total, unit
        self.stream = stream or sys.stderr
        self.interval = INTERVAL if interval is None else interval
        self.done = self.written = self.skipped = 0
        self.start = self.last_line = time.monotonic()
        self.first = None  # (count, time) after the first step
        self.bar = None
        self.quiet = _settings["quiet"] or quiet
        if not self.quiet and self.stream.isatty():
            from tqdm import tqdm  # only on a terminal
            self.bar = tqdm(total=total, desc=what, unit=" " + unit, file=self.stream, dynamic_ncols=True,
                            mininterval=1.0)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        self.close(finished=kind is None)

    def line(self) -> str:
        """'eval: 120/359 images, 45.2 images/s, ETA 0:00:05'.  The rate leaves the first step out
        once there are others: it often includes compiling."""
        now = time.monotonic()
        elapsed = now - self.start
        measured = self.done - self.skipped
        if self.first is not None and measured > self.first[0]:
            rate = (measured - self.first[0]) / max(now - self.first[1], 1e-9)
        else:
            rate = measured / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else None
        return "%s: %d/%d %s%s, %.1f %s/s, %s" % (
            self.what, self.done, self.total, self.unit,
            " (%d done before)" % self.skipped if self.skipped else "", rate, self.unit,
            "ETA %s" % format_duration(eta) if eta is not None and self.done < self.total
            else "took %s" % format_duration(elapsed))

    def skip(self, count: int = 1):
        """Count `count` units done before (a resumed run's): they are not in the rate or the ETA."""
        self.done += count
        self.skipped += count
        if self.bar is not None:
            self.bar.update(count)

    def update(self, count: int = 1):
        self.done += count
        if self.first is None:
            self.first = (self.done - self.skipped, time.monotonic())
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(count)
        elif self.done == count or time.monotonic() - self.last_line >= self.interval:
            self._write()

    def _write(self):
        self.last_line, self.written = time.monotonic(), self.done
        print(self.line(), file=self.stream, flush=True)

    def close(self, finished: bool = True):
        """The final line, 100 %: a finished run did all there was (nothing when it failed)."""
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.close()
        elif finished and not (self.written == self.done == self.total):
            self.total = self.done
            self._write()
