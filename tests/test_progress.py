"""The progress display of long runs: plain lines to a file or pipe, a bar on a terminal, nothing when quiet."""
import io

import pytest

from ppt_ms import progress
from ppt_ms.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def loud():
    progress.set_quiet(False)
    yield
    progress.set_quiet(False)


def test_lines_to_a_pipe_say_done_total_rate_and_eta(loud):
    stream = io.StringIO()
    with Progress("eval tome", 359, stream=stream, interval=0.0) as shown:
        for _ in range(4):
            shown.update(8)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5 and lines[0].startswith("eval tome: 8/359 images, ") and "images/s, ETA " in lines[0]
    assert lines[-1].startswith("eval tome: 32/32 images") and "took" in lines[-1]  # finished: 100 % of what there was


def test_lines_are_throttled_after_the_first_and_end_at_100_percent(loud):
    stream = io.StringIO()
    with Progress("sweep", 3, "settings", stream=stream, interval=3600) as shown:
        for _ in range(3):
            shown.update()
    first, last = stream.getvalue().splitlines()
    assert first.startswith("sweep: 1/3 settings, ") and "ETA" in first
    assert last.startswith("sweep: 3/3 settings, ") and "took" in last


def test_a_terminal_gets_a_bar_and_quiet_gets_nothing(loud):
    terminal = Terminal()
    with Progress("embed", 20, stream=terminal) as shown:
        shown.update(20)
    assert "20/20" in terminal.getvalue() and "\r" in terminal.getvalue()
    progress.set_quiet(True)
    for stream in (io.StringIO(), Terminal()):
        with Progress("embed", 20, stream=stream, interval=0.0) as shown:
            shown.update(20)
        assert stream.getvalue() == ""


def test_a_run_that_fails_writes_no_final_line(loud):
    stream = io.StringIO()
    with pytest.raises(RuntimeError):
        with Progress("eval", 10, stream=stream, interval=3600) as shown:
            shown.update(5)
            raise RuntimeError("decode failed")
    assert stream.getvalue().splitlines() == [stream.getvalue().splitlines()[0]]  # the first step's line only


def test_units_done_before_are_not_in_the_rate(loud, monkeypatch):
    """A resumed sweep: 5 settings skipped at once, then one measured every 2 s: 0.5 settings/s, not thousands."""
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    stream = io.StringIO()
    with Progress("sweep", 7, "settings", stream=stream, interval=0.0) as shown:
        shown.skip(5)
        now[0] = 2.0
        shown.update()
        now[0] = 4.0
        shown.update()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "sweep: 6/7 settings (5 done before), 0.5 settings/s, ETA 0:00:02"
    assert lines[1] == "sweep: 7/7 settings (5 done before), 0.5 settings/s, took 0:00:04"
