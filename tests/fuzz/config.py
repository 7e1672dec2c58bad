"""Coverage-guided fuzzing of the config loader (atheris, i.e. libFuzzer): YAML text and environment overrides.

The only failure allowed is ConfigError, with a message; a config that loads must render back to YAML that
loads to the same config.

    python tests/fuzz/config.py -runs=20000                             # the short run (CI)
    python tests/fuzz/config.py -max_total_time=3600 -jobs=4 CORPUS_DIR  # the long run
    python tests/fuzz/config.py CRASH_FILE                              # replay a finding
"""

from __future__ import annotations

import atheris
from harness import fuzz
from scratch import scratch_directory

with atheris.instrument_imports(include=["segwatch"]):
    from segwatch.config import load_config, render_config
    from segwatch.errors import ConfigError

SCRATCH = scratch_directory()
TARGET = SCRATCH / "segwatch.yaml"
AGAIN = SCRATCH / "again.yaml"

SEEDS = [
    b"watch: {root: dumps}\ntensorboard: {logdir: tb}\n",
    b"watch:\n  root: /data/dumps\n  pattern: '{run}/preds/{role}_e{epoch}.npy'\n  settle: 1.5s\n"
    b"  observer: polling\n  poll_interval: 200ms\ntensorboard: {logdir: gs://bucket/tb, tag_prefix: seg}\n"
    b"compose: {size: [128, 256], num_classes: 19, palette: cityscapes, ignore_index: null, layout: pair}\n"
    b"limits: {max_file_bytes: 512MiB, max_pixels: 1G}\nservice: {retry_backoff: [1s, 5m], queue_size: 10}\n",
    b"watch: {root: d, fixed_gt: val/gt.npy}\ntensorboard: {logdir: t}\n"
    b"compose: {panels: [image, gt, pred], palette: [[0, 0, 0], [255, 0, 0]], num_classes: 2,"
    b" class_names: [bg, fg], threshold: 0.3, class_axis: last}\n",
]
ENV_KEYS = [
    "SEGWATCH_WATCH__ROOT",
    "SEGWATCH_WATCH__SETTLE",
    "SEGWATCH_COMPOSE__NUM_CLASSES",
    "SEGWATCH_COMPOSE__SIZE",
    "SEGWATCH_TENSORBOARD__LOGDIR",
    "SEGWATCH_LIMITS__MAX_FILE_BYTES",
    "SEGWATCH_SERVICE__RETRY_BACKOFF",
    "SEGWATCH_NOSUCH__KEY",
]


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    env = {}
    for key in ENV_KEYS:
        if provider.ConsumeBool():
            env[key] = provider.ConsumeUnicodeNoSurrogates(12)
    TARGET.write_bytes(provider.ConsumeBytes(provider.remaining_bytes()))
    try:
        config = load_config(TARGET, env=env)
    except ConfigError as exc:
        if not str(exc):
            raise AssertionError("ConfigError without a message") from exc
        return
    AGAIN.write_text(render_config(config), encoding="utf-8")
    again = load_config(AGAIN, env={})
    if again != config:
        raise AssertionError(f"rendering changed the config:\n{config}\n!=\n{again}")


def main() -> None:
    # One zero byte per environment key first (no override drawn); the rest is the file.
    fuzz([bytes(len(ENV_KEYS)) + seed for seed in SEEDS], test_one_input, SCRATCH)


if __name__ == "__main__":
    main()
