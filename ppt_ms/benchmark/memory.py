"""Resident memory of this process around the timed calls.

Memory is resident set size (RSS) from Linux /proc/self/status, with the peak
reset through /proc/self/clear_refs before each measured call:
- first_call_peak: highest RSS during the first call above the RSS before it
  (graph compilation plus the memory the compiled graph reserves);
- first_call_retained: what of that stays resident afterwards (the graph,
  its kernels and its share of MindSpore's memory pool);
- timed_calls_peak: the most any timed call raised RSS above the RSS before
  it; usually about 0, because MindSpore reuses the memory of the first call.
These are process-wide numbers (not tensor sizes); later variants can reuse
memory the earlier ones freed, so compare them with care.  None where /proc
is unavailable.
"""
from typing import Optional

MEMORY_NOTE = ("process RSS from /proc/self/status (MB = 2**20 bytes), peak reset via /proc/self/clear_refs: "
               "first_call_peak = RSS high-water mark during the first call (compile + run) above the RSS before "
               "it; first_call_retained = RSS kept after it; timed_calls_peak = largest rise during a timed call. "
               "Process-wide, not tensor sizes; later variants may reuse memory earlier ones freed.")


def _status_mb(field_name: str) -> Optional[float]:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


_PEAKS_BEFORE_RESETS = [0.0]  # VmHWM read before each reset, so the process's own peak is not lost


def process_peak_rss_mb() -> Optional[float]:
    """The most resident memory this process has had (MB), across the probes' resets."""
    current = _status_mb("VmHWM")
    return None if current is None else max(current, *_PEAKS_BEFORE_RESETS)


def _reset_peak_rss() -> bool:
    _PEAKS_BEFORE_RESETS.append(_status_mb("VmHWM") or 0.0)
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


class RssProbe:
    """Resident memory around a block of code: `peak` = high-water mark above
    the RSS at entry, `retained` = RSS at exit minus RSS at entry (MB; None
    without Linux /proc)."""

    def __enter__(self):
        self.usable = _reset_peak_rss()
        self.before = _status_mb("VmRSS") if self.usable else None
        self.peak = self.retained = None
        return self

    def __exit__(self, *exc):
        if self.before is not None:
            self.peak = _status_mb("VmHWM") - self.before
            self.retained = _status_mb("VmRSS") - self.before
        return False
