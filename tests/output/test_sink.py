import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
from tensorboard.util import tensor_util

from segwatch.errors import SinkError
from segwatch.output.sink import EVENT_FILE_MARK, EventSink
from segwatch.render.png import encode_png
from segwatch.summaries import image_summary, scalar_summary, text_summary

from conftest import decode_png, read_event_tensors, read_images


def paletted(seed: int) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, 4, size=(6, 9), dtype=np.uint8)
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [1, 2, 3]], dtype=np.uint8)
    return encode_png(indices, palette), palette[indices]


def test_summaries_read_back_through_tensorboard(tmp_path):
    sink = EventSink(str(tmp_path))
    png_a, rgb_a = paletted(1)
    png_b, rgb_b = paletted(2)
    sink.write(
        "run",
        3,
        [
            image_summary("seg/pairs", [png_a, png_b], width=9, height=6, description="d"),
            scalar_summary("seg/mIoU", 0.25),
            text_summary("seg/table", "| a |"),
        ],
    )
    sink.write("run", 4, [image_summary("seg/pairs", [png_b], width=9, height=6)])
    sink.close()

    images = read_images(tmp_path / "run")["seg/pairs"]
    assert sorted(images) == [3, 4]
    np.testing.assert_array_equal(images[3][0], rgb_a)
    np.testing.assert_array_equal(images[3][1], rgb_b)
    np.testing.assert_array_equal(images[4][0], rgb_b)
    tensors = read_event_tensors(tmp_path / "run")
    assert tensor_util.make_ndarray(tensors["seg/mIoU"][0][1]) == np.float32(0.25)
    assert tensor_util.make_ndarray(tensors["seg/table"][0][1]) == b"| a |"
    assert decode_png(tensors["seg/pairs"][0][1].string_val[2]).shape == (6, 9, 3)


def test_steps_must_go_up_per_run(tmp_path):
    sink = EventSink(str(tmp_path))
    png, _ = paletted(0)
    sink.write("a", 5, [image_summary("t", [png], width=9, height=6)])
    sink.write("b", 1, [image_summary("t", [png], width=9, height=6)])  # runs are independent
    with pytest.raises(ValueError, match="not above"):
        sink.write("a", 5, [image_summary("t", [png], width=9, height=6)])
    sink.close()


def test_fast_restarts_never_share_an_event_file(tmp_path):
    png, _ = paletted(0)
    for step in range(3):  # three "processes" within the same second
        sink = EventSink(str(tmp_path))
        sink.write("r", step, [image_summary("t", [png], width=9, height=6)])
        sink.close()
    files = sorted((tmp_path / "r").iterdir())
    assert len(files) == 3 and all(f.name.endswith(EVENT_FILE_MARK) for f in files)
    # TensorBoard reads them in name order: the later processes' files sort after the earlier ones'.
    assert [step for step, _ in read_event_tensors(tmp_path / "r")["t"]] == [0, 1, 2]
    assert sorted(read_images(tmp_path / "r")["t"]) == [0, 1, 2]


def test_unwritable_logdir_is_a_sink_error(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    png, _ = paletted(0)
    sink = EventSink(str(blocker / "tb"))
    with pytest.raises(SinkError, match="cannot write summaries"):
        sink.write("r", 0, [image_summary("t", [png], width=9, height=6)])
    # The failed step was not counted as written: once the logdir can be made, the same step goes through.
    blocker.unlink()
    blocker.mkdir()
    sink.write("r", 0, [image_summary("t", [png], width=9, height=6)])
    sink.close()
    assert sorted(read_images(blocker / "tb" / "r")["t"]) == [0]


def open_event_files(root: Path) -> int:
    """Event files under `root` that this process holds open, as the kernel sees them."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            count += target.startswith(str(root)) and EVENT_FILE_MARK in target
    return count


def test_idle_and_least_recently_used_writers_are_closed_and_every_step_is_read_once(tmp_path):
    from segwatch.output.recovery import written_tags

    from conftest import raw_record_counts

    now = [0.0]
    sink = EventSink(str(tmp_path), max_open=2, clock=lambda: now[0])
    for step in (1, 2):
        for run in ("a", "b[x]", "c"):
            sink.write(run, step, [scalar_summary("seg/mIoU", step / 10)])
            # Never more than `max_open` event files open, whatever the number of runs.
            assert open_event_files(tmp_path) <= 2
    now[0] += 300
    assert sink.close_idle(120) == 2
    assert open_event_files(tmp_path) == 0
    sink.write("a", 3, [scalar_summary("seg/mIoU", 0.3)])
    sink.close()
    # Each reopen started a new event file; together they hold each step once, in order.
    assert len(list((tmp_path / "a").glob("events.out.tfevents.*"))) == 3
    counts = raw_record_counts(tmp_path / "a")
    assert counts == {("seg/mIoU", 1): 1, ("seg/mIoU", 2): 1, ("seg/mIoU", 3): 1}
    assert [step for step, _ in read_event_tensors(tmp_path / "a")["seg/mIoU"]] == [1, 2, 3]
    assert sorted(written_tags(tmp_path, {})["a"]) == [1, 2, 3]
    assert sorted(written_tags(tmp_path, {})["b[x]"]) == [1, 2]


def test_an_epoch_is_one_record_checked_by_tensorflow_s_crc(tmp_path):
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as reference_crc

    from segwatch.output.eventfile import masked_crc32c, read_events

    for data in (b"", b"a", bytes(range(256)) * 99):
        assert masked_crc32c(data) == reference_crc(data)
    sink = EventSink(str(tmp_path))
    sink.write("r", 1, [scalar_summary("s/a", 0.5), scalar_summary("s/b", 0.25), text_summary("s/t", "x")])
    sink.write("r", 2, [scalar_summary("s/a", 0.75)])
    sink.close()
    (path,) = (tmp_path / "r").glob("events.out.tfevents.*")
    events = list(read_events(path))
    assert [e.step for e in events] == [0, 1, 2] and events[0].file_version == "brain.Event:2"
    assert [v.tag for v in events[1].summary.value] == ["s/a", "s/b", "s/t"]
    # A torn last record ends the file for the reader, as it does for TensorBoard.
    whole = path.read_bytes()
    path.write_bytes(whole[:-3])
    assert [e.step for e in read_events(path)] == [0, 1]
