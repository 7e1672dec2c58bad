"""Soak: a real `segwatch run` process fed by a steady producer for a long time; its memory and open files
must stay flat once warmed up.

A producer thread writes epochs round-robin over several runs at a steady rate, half through `save_epoch`
(an epoch directory renamed into place), half with plain `np.save` in place, and every so often a bad epoch
(pickled data, garbage, a forged header, NaN scores, unknown class ids, mismatched shapes, a file that stays
short). Every few seconds the daemon's RSS (/proc/<pid>/status) and open descriptors (/proc/<pid>/fd) are
sampled, with the epochs logged so far (from the ledger) and the disk used by the dump and the logdir.

At the end it waits for the daemon to catch up, stops it with SIGTERM, checks that every good epoch was logged
exactly once, that no bad one was, and that each bad one got exactly one ERROR line; then it reports
throughput and the least-squares slope of RSS and descriptors after warm-up, per hour, with PASS or MISS.

    python tests/bench/soak.py                      # 10 minutes, 4 runs, 2 epochs/s
    python tests/bench/soak.py --duration 3600      # the 1-hour soak
    python tests/bench/soak.py --duration 60 --json # a quick look, machine-readable

Disk: the dump grows by about 0.4 MiB per second at the default rate (about 1.4 GiB in an hour), the logdir by
about 1% of that; `--keep-epochs 50` deletes logged epochs as a rolling dump would, which also shows whether
memory growth comes from segwatch itself or from what it tracks per epoch on disk (inotify watches).

Exit status 0 when everything passed, 1 otherwise. The work directory is deleted unless --keep is given.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from segwatch.dump import save_epoch
from segwatch.output.ledger import read_document

NUM_CLASSES = 5
BATCH, HEIGHT, WIDTH = 4, 64, 64
BAD_KINDS = ("pickle", "garbage", "forged-shape", "nan-scores", "class-id", "shape-mismatch", "short")


@dataclass
class Sample:
    elapsed: float
    rss_kib: int
    fds: int
    threads: int
    logged: int
    set_aside: int
    dump_bytes: int
    logdir_bytes: int


@dataclass
class Produced:
    good: dict[str, list[int]] = field(default_factory=dict)
    bad: dict[str, dict[int, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> tuple[int, int]:
        with self.lock:
            return sum(map(len, self.good.values())), sum(map(len, self.bad.values()))


def blob_labels(rng: np.random.Generator, cell: int = 8) -> np.ndarray:
    coarse = rng.standard_normal((BATCH, NUM_CLASSES, HEIGHT // cell, WIDTH // cell))
    return coarse.argmax(axis=1).repeat(cell, axis=1).repeat(cell, axis=2).astype(np.uint8)


def write_good(root: Path, run: str, epoch: int, rng: np.random.Generator, in_place: bool) -> None:
    gt = blob_labels(rng)
    if rng.random() < 0.3:
        pred: np.ndarray = rng.standard_normal((BATCH, NUM_CLASSES, HEIGHT, WIDTH)).astype(np.float32)
    else:
        pred = blob_labels(rng).astype(np.int64)
    if not in_place:
        save_epoch(root, epoch, gt=gt, pred=pred, run=run)
        return
    directory = root / run / f"epoch_{epoch}"
    directory.mkdir(parents=True)
    np.save(directory / "gt.npy", gt)
    np.save(directory / "pred.npy", pred)


def write_bad(root: Path, run: str, epoch: int, rng: np.random.Generator, kind: str) -> None:
    directory = root / run / f"epoch_{epoch}"
    directory.mkdir(parents=True)
    gt = blob_labels(rng)
    np.save(directory / "gt.npy", gt)
    pred_path = directory / "pred.npy"
    if kind == "pickle":
        pred_path.write_bytes(pickle.dumps({"epoch": epoch}))
    elif kind == "garbage":
        pred_path.write_bytes(rng.bytes(int(rng.integers(1, 4096))))
    elif kind == "forged-shape":
        header = "{'descr': '<i8', 'fortran_order': False, 'shape': (4611686018427387904, 64), }"
        text = header.encode("latin1").ljust(118) + b"\n"
        pred_path.write_bytes(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + bytes(64))
    elif kind == "nan-scores":
        scores = rng.standard_normal((BATCH, NUM_CLASSES, HEIGHT, WIDTH)).astype(np.float32)
        scores[0, :, 3, 3] = np.nan
        np.save(pred_path, scores)
    elif kind == "class-id":
        pred = blob_labels(rng).astype(np.int64)
        pred[-1, -1, -1] = NUM_CLASSES + 7
        np.save(pred_path, pred)
    elif kind == "shape-mismatch":
        np.save(pred_path, blob_labels(rng)[:, :-3])
    elif kind == "short":
        buffer = io.BytesIO()
        np.save(buffer, blob_labels(rng).astype(np.int64))
        data = buffer.getvalue()
        pred_path.write_bytes(data[: len(data) // 2])
    else:
        raise ValueError(f"unknown bad kind {kind!r}")


def produce(*args: object) -> None:
    try:
        _produce(*args)  # type: ignore[arg-type]
    except BaseException as exc:
        PRODUCER_FAILED.append(f"producer failed: {exc!r}")
        raise


PRODUCER_FAILED: list[str] = []


def _produce(
    root: Path,
    runs: list[str],
    rate: float,
    bad_fraction: float,
    seed: int,
    produced: Produced,
    stop: threading.Event,
    keep_epochs: int,
    logdir: Path,
) -> None:
    """One epoch every 1/rate seconds, round-robin over runs, each run's epochs ascending.

    With `keep_epochs`, a run's epochs older than its last `keep_epochs` are deleted once the ledger says they
    are done or set aside, as a rolling dump would be: what then grows is only what segwatch keeps per epoch.
    """
    rng = np.random.default_rng(seed)
    next_epoch = dict.fromkeys(runs, 0)
    period = 1.0 / rate
    due = time.monotonic()
    index = 0
    while not stop.is_set():
        run = runs[index % len(runs)]
        index += 1
        epoch = next_epoch[run]
        next_epoch[run] += 1
        if rng.random() < bad_fraction:
            kind = BAD_KINDS[int(rng.integers(len(BAD_KINDS)))]
            write_bad(root, run, epoch, rng, kind)
            with produced.lock:
                produced.bad.setdefault(run, {})[epoch] = kind
        else:
            write_good(root, run, epoch, rng, in_place=bool(rng.random() < 0.5))
            with produced.lock:
                produced.good.setdefault(run, []).append(epoch)
        if keep_epochs and epoch % keep_epochs == 0:
            prune(root, logdir, run, epoch - keep_epochs)
        due += period
        stop.wait(max(0.0, due - time.monotonic()))


def prune(root: Path, logdir: Path, run: str, below: int) -> None:
    record = read_ledger(logdir).get(run, {})
    finished = {e for first, last in record.get("done", []) for e in range(first, last + 1)}  # type: ignore[attr-defined]
    finished |= {int(e) for e in record.get("set_aside", {})}  # type: ignore[attr-defined]
    for directory in (root / run).glob("epoch_*"):
        epoch = int(directory.name.removeprefix("epoch_"))
        if epoch < below and epoch in finished:
            shutil.rmtree(directory)


def read_ledger(logdir: Path) -> dict[str, dict[str, object]]:
    return read_document(logdir)["runs"]


def ledger_counts(logdir: Path) -> tuple[int, int]:
    runs = read_ledger(logdir)
    done = sum(last - first + 1 for record in runs.values() for first, last in record["done"])  # type: ignore[attr-defined]
    aside = sum(len(record["set_aside"]) for record in runs.values())  # type: ignore[arg-type]
    return done, aside


def disk_bytes(path: Path) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total


def proc_status(pid: int) -> tuple[int, int, int]:
    """(RSS in KiB, open descriptors, threads) of a live process."""
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


def slope_per_hour(samples: list[Sample], attribute: str) -> float:
    """Least-squares slope of `attribute` against time, in units per hour."""
    if len(samples) < 3:
        return 0.0
    t = np.array([s.elapsed for s in samples]) / 3600
    y = np.array([float(getattr(s, attribute)) for s in samples])
    return float(np.polyfit(t, y, 1)[0])


def run_soak(args: argparse.Namespace, work: Path) -> dict[str, object]:
    root, logdir = work / "dumps", work / "tb"
    root.mkdir(parents=True)
    config = {
        "watch": {
            "root": str(root),
            "observer": args.observer,
            "settle": "200ms",
            "rescan_interval": f"{args.rescan}s",
            "incomplete_timeout": "30s",
        },
        "tensorboard": {"logdir": str(logdir)},
        "compose": {"layout": "grid", "size": [64, 64], "num_classes": NUM_CLASSES, "columns": 4},
        "service": {"status_interval": "1m"},
    }
    config_path = work / "segwatch.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = work / "segwatch.log"
    runs = [f"run{index}" for index in range(args.runs)]

    with log_path.open("wb") as log_file:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "segwatch", "run", "--config", str(config_path)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        produced = Produced()
        stop = threading.Event()
        producer = threading.Thread(
            target=produce,
            args=(
                root,
                runs,
                args.rate,
                args.bad_fraction,
                args.seed,
                produced,
                stop,
                args.keep_epochs,
                logdir,
            ),
        )
        samples: list[Sample] = []
        started = time.monotonic()
        try:
            producer.start()
            while time.monotonic() - started < args.duration:
                if PRODUCER_FAILED:
                    raise SystemExit(PRODUCER_FAILED[0])
                if daemon.poll() is not None:
                    raise SystemExit(f"segwatch exited early with status {daemon.returncode}; see {log_path}")
                rss, fds, threads = proc_status(daemon.pid)
                logged, aside = ledger_counts(logdir)
                samples.append(
                    Sample(
                        round(time.monotonic() - started, 1),
                        rss,
                        fds,
                        threads,
                        logged,
                        aside,
                        disk_bytes(root),
                        disk_bytes(logdir),
                    )
                )
                if not args.json:
                    s = samples[-1]
                    print(
                        f"{s.elapsed:7.0f}s rss {s.rss_kib / 1024:7.1f} MiB  fds {s.fds:3d}  threads "
                        f"{s.threads:3d}  logged {s.logged:6d}  set aside {s.set_aside:4d}  dump "
                        f"{s.dump_bytes / 2**20:7.1f} MiB  logdir {s.logdir_bytes / 2**20:6.1f} MiB",
                        flush=True,
                    )
                time.sleep(args.sample_interval)
        finally:
            stop.set()
            producer.join()
        good, bad = produced.count()
        catch_up_started = time.monotonic()
        while ledger_counts(logdir)[0] < good and time.monotonic() - catch_up_started < 120:
            time.sleep(0.5)
        catch_up = time.monotonic() - catch_up_started
        daemon.send_signal(signal.SIGTERM)
        try:
            exit_status = daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            exit_status = daemon.wait()

    problems = check_outcome(produced, logdir, log_path, exit_status)
    warm = [s for s in samples if s.elapsed >= args.warmup]
    rss_slope = slope_per_hour(warm, "rss_kib") / 1024
    fd_slope = slope_per_hour(warm, "fds")
    thread_slope = slope_per_hour(warm, "threads")
    verdicts = {
        "rss": abs(rss_slope) <= args.rss_tolerance,
        "fds": abs(fd_slope) <= args.fd_tolerance,
        "threads": abs(thread_slope) <= args.fd_tolerance,
        "outcome": not problems,
    }
    duration = samples[-1].elapsed if samples else 0.0
    logged_in_window = samples[-1].logged if samples else 0
    return {
        "duration_s": duration,
        "runs": args.runs,
        "rate_per_s": args.rate,
        "observer": args.observer,
        "keep_epochs": args.keep_epochs,
        "epochs_written": {"good": good, "bad": bad},
        "bad_kinds": dict(Counter(kind for per in produced.bad.values() for kind in per.values())),
        "throughput_per_min": round(60 * logged_in_window / duration, 1) if duration else 0.0,
        "catch_up_after_stop_s": round(catch_up, 1),
        "rss_mib": {
            "after_warmup": round(warm[0].rss_kib / 1024, 1) if warm else None,
            "end": round(samples[-1].rss_kib / 1024, 1) if samples else None,
            "max": round(max(s.rss_kib for s in samples) / 1024, 1) if samples else None,
            "slope_per_hour": round(rss_slope, 2),
        },
        "fds": {
            "after_warmup": warm[0].fds if warm else None,
            "end": samples[-1].fds if samples else None,
            "max": max(s.fds for s in samples) if samples else None,
            "slope_per_hour": round(fd_slope, 2),
        },
        "threads": {
            "end": samples[-1].threads if samples else None,
            "slope_per_hour": round(thread_slope, 2),
        },
        "disk_mib": {
            "dump": round(samples[-1].dump_bytes / 2**20, 1) if samples else None,
            "logdir": round(samples[-1].logdir_bytes / 2**20, 1) if samples else None,
        },
        "exit_status": exit_status,
        "problems": problems,
        "verdict": {name: "PASS" if ok else "MISS" for name, ok in verdicts.items()},
        "passed": all(verdicts.values()),
        "samples": [asdict(s) for s in samples] if args.json else None,
    }


def check_outcome(produced: Produced, logdir: Path, log_path: Path, exit_status: int) -> list[str]:
    """Every good epoch logged, no bad one; one ERROR line per bad file that is not merely short."""
    problems = []
    if exit_status != 0:
        problems.append(f"segwatch exited with status {exit_status} after SIGTERM")
    runs = read_ledger(logdir)
    log_lines = log_path.read_text(errors="replace").splitlines()
    errors = [line for line in log_lines if " ERROR " in line]
    for run, epochs in produced.good.items():
        done = {e for first, last in runs.get(run, {}).get("done", []) for e in range(first, last + 1)}  # type: ignore[attr-defined]
        missing = sorted(set(epochs) - done)
        if missing:
            problems.append(
                f"{run}: good epochs never logged: {missing[:10]}{'...' if len(missing) > 10 else ''}"
            )
        wrongly = sorted(done & set(produced.bad.get(run, {})))
        if wrongly:
            problems.append(f"{run}: bad epochs logged: {wrongly}")
    for run, bad in produced.bad.items():
        for epoch, kind in bad.items():
            path = f"{run}/epoch_{epoch}/"
            mentions = [line for line in errors if path in line]
            expected = 0 if kind == "short" else 1
            if len(mentions) != expected:
                problems.append(f"{path} ({kind}): {len(mentions)} ERROR lines, expected {expected}")
    unexplained = [
        line
        for line in errors
        if not any(f"{r}/epoch_{e}/" in line for r in produced.bad for e in produced.bad[r])
    ]
    problems.extend(f"unexpected error: {line}" for line in unexplained[:10])
    tracebacks = sum("Traceback" in line for line in log_lines)
    if tracebacks:
        problems.append(f"{tracebacks} tracebacks in the log")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of production (default 600)")
    parser.add_argument("--runs", type=int, default=4, help="runs written round-robin (default 4)")
    parser.add_argument("--rate", type=float, default=2.0, help="epochs per second over all runs (default 2)")
    parser.add_argument("--bad-fraction", type=float, default=0.05, help="share of bad epochs (default 0.05)")
    parser.add_argument("--sample-interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=None, help="seconds left out of the slopes")
    parser.add_argument("--rescan", type=float, default=30.0, help="rescan_interval in seconds (default 30)")
    parser.add_argument("--observer", default="auto", choices=["auto", "inotify", "polling"])
    parser.add_argument("--rss-tolerance", type=float, default=16.0, help="MiB per hour (default 16)")
    parser.add_argument("--fd-tolerance", type=float, default=6.0, help="descriptors per hour (default 6)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep-epochs",
        type=int,
        default=0,
        help="delete each run's epochs older than its last N once logged (a rolling dump); 0 keeps all",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where to put the dump and logdir")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", action="store_true", help="print one JSON report, samples included")
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = min(120.0, args.duration / 5)

    work = Path(tempfile.mkdtemp(prefix="segwatch-soak-", dir=args.workdir))
    try:
        report = run_soak(args, work)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            if key != "samples":
                print(f"{key}: {value}")
        print("PASS" if report["passed"] else "MISS")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
