"""Memory figures of a benchmark child process: anonymous resident memory sampled by a thread, and /proc."""

from __future__ import annotations

import threading

MEMORY_METHOD = (
    "extra private = peak over the artifacts minus the baseline, where the baseline is the same process after "
    "imports, pipeline set-up and one tiny TensorFlow summary write. Two measures, the larger one is judged: "
    "anonymous resident memory (RssAnon of /proc/self/status, sampled every 1 ms by a thread; file-backed "
    "pages, i.e. the .npy page cache, are not anonymous and do not count) and the tracemalloc "
    "peak (every Python and numpy buffer allocation, exact, but blind to TensorFlow's C++ allocations). "
    "Peak RSS is VmHWM: the whole process, mapped file pages included."
)


def status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def smaps_rollup() -> dict[str, int]:
    try:
        with open("/proc/self/smaps_rollup") as rollup:
            lines = rollup.read().splitlines()[1:]
    except OSError:
        return {}
    values = {}
    for line in lines:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[-1] == "kB":
            values[key] = int(parts[0]) * 1024
    return values


class AnonSampler(threading.Thread):
    def __init__(self, interval: float = 0.001) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_kib = status_kib("RssAnon")
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.peak_kib = max(self.peak_kib, status_kib("RssAnon"))
            self.samples += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.peak_kib = max(self.peak_kib, status_kib("RssAnon"))
