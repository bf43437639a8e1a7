"""TensorBoard event files for ``dgflow refine`` and ``dgflow sample`` runs (``tensorboard --logdir exp_root``).

A finished run's folder gets ``tensorboard/events.out.tfevents.*`` holding

* ``refine`` runs (``metrics.json`` of :func:`dgflow.runs.generator.finish`): ``refine/mean_logit`` and
  ``refine/<metric>`` (classifier FID / IS, Inception FID, toy metrics ...) at every kept step, the image
  grid ``grid_step_<k>.png`` of each kept step as image ``samples`` at step ``k``, and with ``eta: auto``
  / ``steps: auto`` the pilot's curves: ``auto/mean_logit/<option>_<size>`` per pilot step, the stopping
  level ``auto/level`` and the chosen stop ``auto/chosen_steps``, with the reason as text ``auto/reason``;
* ``sample`` runs (``metrics.json`` of :func:`dgflow.runs.sample.finish_sample`): ``<variant>/<metric>``
  (step 0) and the grid ``grid_<variant>.png`` as image ``samples/<variant>``.

The events are rewritten from the run's files each time the run is merged (a resumed run does not
duplicate them), deterministically: equal runs give byte-identical event files. :func:`read_events` reads them back without TensorBoard.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .io import write_with

EVENTS_DIR = "tensorboard"


def _grid_images(run_dir: Path) -> dict[str, list[tuple[int, Path]]]:
    """``{tag: [(step, png), ...]}`` from the grids a run folder holds."""
    images: dict[str, list[tuple[int, Path]]] = {}
    for path in sorted(run_dir.glob("grid_*.png")):
        step = re.fullmatch(r"grid_step_(\d+)\.png", path.name)
        if step:
            images.setdefault("samples", []).append((int(step.group(1)), path))
        else:
            images.setdefault(f"samples/{path.stem[len('grid_'):]}", []).append((0, path))
    return images


def write_run_events(run_dir: str | Path, metrics: dict[str, Any],
                     images: dict[str, list[tuple[int, Path]]] | None = None) -> Path:
    """Write the TensorBoard events of a finished run to ``run_dir/tensorboard/events.out.tfevents.dgflow``.

    ``metrics`` is the run's ``metrics.json`` content (a refine run's or a sample run's); ``images``
    (``{tag: [(step, png path)]}``) defaults to the run folder's ``grid_*.png``. The file replaces any earlier
    one and is byte-identical for equal inputs (fixed name, ``wall_time`` 0: plot against steps), like the
    run's other files. Returns the events folder.
    """
    from PIL import Image
    from tensorboardX import summary
    from tensorboardX.proto import event_pb2
    from tensorboardX.record_writer import masked_crc32c

    run_dir = Path(run_dir)
    events = [event_pb2.Event(wall_time=0.0, file_version="brain.Event:2")]

    def add(value: Any, step: int) -> None:
        events.append(event_pb2.Event(wall_time=0.0, step=int(step), summary=value))

    if "steps" in metrics:  # a refine run: curves over the kept steps
        curves = {"mean_logit": metrics.get("mean_logit", []), **metrics.get("dataset", {})}
        for name, values in curves.items():
            for step, value in zip(metrics["steps"], values):
                if value is not None:
                    add(summary.scalar(f"refine/{name}", float(value)), step)
    for variant, values in metrics.get("variants", {}).items():  # a sample run: one value per variant
        for name, value in values.items():
            if value is not None:
                add(summary.scalar(f"{variant}/{name}", float(value)), 0)
    _add_auto(add, summary, run_dir)
    for tag, entries in (images if images is not None else _grid_images(run_dir)).items():
        for step, path in entries:
            with Image.open(path) as img:
                add(summary.image(tag, np.asarray(img.convert("RGB")), dataformats="HWC"), step)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            for event in events:
                data = event.SerializeToString()
                header = struct.pack("<Q", len(data))
                fh.write(header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data)))

    logdir = run_dir / EVENTS_DIR
    for old in logdir.glob("events.out.tfevents.*"):
        old.unlink()
    logdir.mkdir(parents=True, exist_ok=True)
    write_with(logdir / "events.out.tfevents.dgflow", write)
    return logdir


def _add_auto(add: Any, summary: Any, run_dir: Path) -> None:
    """The "auto" pilot's mean logit per step for every step size it tried, its level and its stop."""
    path = run_dir / "auto.json"
    if not path.exists():
        return
    auto = json.loads(path.read_text())["auto"]
    option = auto["step_option"]
    for trial in auto["trials"]:
        for step, value in enumerate(trial["mean_logit"]):
            add(summary.scalar(f"auto/mean_logit/{option}_{trial['size']:g}", float(value)), step)
    add(summary.scalar("auto/level", float(auto["level"])), 0)
    add(summary.scalar("auto/chosen_steps", float(auto["chosen"]["steps"])), 0)
    add(summary.scalar(f"auto/chosen_{option}", float(auto["chosen"][option])), 0)
    add(summary.text("auto/reason", auto["reason"]), 0)


def read_events(logdir: str | Path) -> dict[str, dict[str, list[tuple[int, Any]]]]:
    """Read event files without TensorBoard: ``{"scalars": {tag: [(step, value)]}, "images": {tag: [(step,
    (height, width, png bytes))]}, "text": {tag: [(step, str)]}}``.

    An event file is a sequence of records ``[uint64 length][uint32 crc][event bytes][uint32 crc]``.
    """
    from tensorboardX.proto import event_pb2

    out: dict[str, dict[str, list[tuple[int, Any]]]] = {"scalars": {}, "images": {}, "text": {}}
    for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
        raw = path.read_bytes()
        pos = 0
        while pos + 12 <= len(raw):
            (length,) = struct.unpack("<Q", raw[pos:pos + 8])
            event = event_pb2.Event.FromString(raw[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out["scalars"].setdefault(value.tag, []).append((event.step, value.simple_value))
                elif value.HasField("image"):
                    img = value.image
                    out["images"].setdefault(value.tag, []).append(
                        (event.step, (img.height, img.width, img.encoded_image_string)))
                elif value.HasField("tensor") and value.tensor.string_val:
                    tag = value.tag.removesuffix("/text_summary")
                    out["text"].setdefault(tag, []).append((event.step, value.tensor.string_val[0].decode()))
    return out
