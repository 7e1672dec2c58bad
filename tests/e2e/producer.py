"""A stand-in training job for the end-to-end tests: writes epochs into a dump root in one of three ways.

  inplace      creates gt.npy and pred.npy in the epoch directory, writes both headers, then the data in
               chunks with pauses between (what a slow writer or a network disk looks like from outside)
  rename-file  writes each file under a hidden name in the epoch directory, then renames it to its real name
  rename-dir   `segwatch.dump.save_epoch`: the epoch is staged in a hidden directory, then renamed into place

An epoch's arrays depend only on (seed, run, epoch), so a test recomputes what it expects with `epoch_arrays`.
Prints `<run> <epoch> <unix time>` once an epoch is complete on disk. SIGTERM ends it between epochs.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np

SIZE = 32
NUM_CLASSES = 5
CELL = 8


def epoch_arrays(seed: int, run: str, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """(gt, pred) of one epoch: blob-shaped label maps, SIZE x SIZE, classes 0..NUM_CLASSES-1."""
    rng = np.random.default_rng([seed, zlib.crc32(run.encode()), epoch])

    def blobs() -> np.ndarray:
        coarse = rng.standard_normal((NUM_CLASSES, SIZE // CELL, SIZE // CELL))
        return coarse.argmax(axis=0).repeat(CELL, axis=0).repeat(CELL, axis=1)

    # Different dtypes (and so file sizes) for the two roles, as a real job's labels and argmax output have.
    return blobs().astype(np.uint8), blobs().astype(np.int64)


def npy_bytes(array: np.ndarray) -> tuple[bytes, bytes]:
    """(header, data) of the `.npy` file np.save would write for `array`."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    whole = buffer.getvalue()
    split = len(whole) - array.nbytes
    return whole[:split], whole[split:]


def write_in_place(directory: Path, arrays: dict[str, np.ndarray], chunks: int, pause: float) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    parts = {role: npy_bytes(array) for role, array in arrays.items()}
    handles = {role: open(directory / f"{role}.npy", "wb", buffering=0) for role in arrays}  # noqa: SIM115
    try:
        for role, (header, _) in parts.items():
            handles[role].write(header)
        for index in range(chunks):
            time.sleep(pause)
            for role, (_, data) in parts.items():
                step = -(-len(data) // chunks)
                handles[role].write(data[index * step : (index + 1) * step])
    finally:
        for handle in handles.values():
            handle.close()


def write_renamed_files(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for role, array in arrays.items():
        hidden = directory / f".{role}.npy.tmp"
        with open(hidden, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
        os.rename(hidden, directory / f"{role}.npy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--mode", choices=["inplace", "rename-file", "rename-dir"], required=True)
    parser.add_argument("--runs", default="run", help="comma-separated runs, written round-robin per epoch")
    parser.add_argument("--first", type=int, default=0, help="first epoch")
    parser.add_argument("--count", type=int, default=0, help="epochs per run (0: until SIGTERM)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--interval", type=float, default=0.0, help="pause between epochs, seconds")
    parser.add_argument("--chunks", type=int, default=4, help="inplace: data chunks per file")
    parser.add_argument("--chunk-pause", type=float, default=0.3, help="inplace: pause before each chunk")
    args = parser.parse_args(argv)

    from segwatch.dump import epoch_directory, save_epoch

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    epoch = args.first
    while not stop.is_set() and (args.count == 0 or epoch < args.first + args.count):
        for run in args.runs.split(","):
            gt, pred = epoch_arrays(args.seed, run, epoch)
            if args.mode == "rename-dir":
                save_epoch(args.root, epoch, gt=gt, pred=pred, run=run)
            elif args.mode == "rename-file":
                write_renamed_files(epoch_directory(args.root, epoch, run), {"gt": gt, "pred": pred})
            else:
                directory = epoch_directory(args.root, epoch, run)
                write_in_place(directory, {"gt": gt, "pred": pred}, args.chunks, args.chunk_pause)
            print(run, epoch, f"{time.time():.6f}", flush=True)
        epoch += 1
        stop.wait(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
