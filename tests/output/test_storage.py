"""Logdirs behind TensorFlow's filesystem layer: the ledger and recovery go through it like the event files.

TensorFlow's in-memory `ram://` filesystem stands in for object stores (gs://, s3://): it is served by the same
`tf.io.gfile` layer, and needs no network. It lives inside one process, so this test runs segwatch in-process.
"""

from __future__ import annotations

import secrets

import numpy as np

from segwatch.config import load_config
from segwatch.dump import save_epoch
from segwatch.errors import Outcome
from segwatch.output import storage
from segwatch.output.ledger import LEDGER_NAME
from segwatch.service.once import run_once

from conftest import blob_labels


def test_a_url_logdir_keeps_ledger_and_recovery_on_the_same_filesystem(tmp_path, write_config):
    import tensorflow as tf
    from tensorboard.backend.event_processing import plugin_event_accumulator as pea

    rng = np.random.default_rng(2)
    for epoch in range(3):
        gt = blob_labels(rng, (16, 16), 5)
        save_epoch(tmp_path / "dumps", epoch, gt=gt, pred=gt, run="r")
    logdir = f"ram://segwatch-{secrets.token_hex(4)}/tb"
    config = load_config(write_config(tensorboard={"logdir": logdir}, metrics={"enabled": False}), env={})

    assert run_once(config).outcomes[Outcome.LOGGED] == 3
    ledger = storage.join(logdir, LEDGER_NAME)
    assert tf.io.gfile.exists(ledger)
    assert not tf.io.gfile.glob(ledger + ".*")  # no staging file left behind

    again = run_once(config)
    assert again.outcomes[Outcome.LOGGED] == 0 and again.outcomes[Outcome.DONE] == 3

    # With the ledger gone, recovery reads the event files back through the same layer: nothing twice.
    tf.io.gfile.remove(ledger)
    rebuilt = run_once(config)
    assert rebuilt.outcomes[Outcome.LOGGED] == 0

    accumulator = pea.EventAccumulator(storage.join(logdir, "r"), size_guidance={pea.TENSORS: 0})
    accumulator.Reload()
    assert [event.step for event in accumulator.Tensors("segwatch/grid")] == [0, 1, 2]
