"""TensorBoard logs: every folder under LOGDIR holding event files is one run, every scalar tag
one series, with its steps and wall times.

Read with TensorBoard's own record reader and event protos (`tensorboard` installs without
TensorFlow, and this path never imports it). Both ways a scalar is written are read: the
classic `simple_value` (`torch.utils.tensorboard.SummaryWriter.add_scalar`) and the tensor
summaries of the `scalars` plugin (`tf.summary.scalar` in TF 2). Event files of one folder are
read in name order, which is the order they were started in.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import DataError
from engine.importers import Imported, Progress, existing, import_spec, record

EVENT_FILES = "*tfevents*"


def find_runs(logdir: Path) -> list[Path]:
    """The folders under `logdir` (itself included) that hold event files, sorted."""
    if not logdir.is_dir():
        raise DataError(f"{logdir}: not a folder (give the log directory SummaryWriter wrote to)")
    folders = {p.parent for p in logdir.rglob(EVENT_FILES) if p.is_file()}
    return sorted(folders)


def read_scalars(folder: Path) -> dict[str, tuple[list, list, list]]:
    """{tag: (steps, values, walls)} of the event files directly in `folder`."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2
    from tensorboard.util import tensor_util

    out: dict[str, tuple[list, list, list]] = {}
    parse = event_pb2.Event.FromString
    for path in sorted(p for p in folder.glob(EVENT_FILES) if p.is_file()):
        records = 0
        try:
            for raw in RawEventFileLoader(str(path)).Load():
                records += 1
                event = parse(raw)
                if not event.HasField("summary"):
                    continue
                for value in event.summary.value:
                    kind = value.WhichOneof("value")
                    if kind == "simple_value":
                        number = value.simple_value
                    elif kind == "tensor" and value.metadata.plugin_data.plugin_name == "scalars":
                        number = float(tensor_util.make_ndarray(value.tensor).item())
                    else:
                        continue
                    steps, values, walls = out.setdefault(value.tag, ([], [], []))
                    steps.append(event.step)
                    values.append(number)
                    walls.append(event.wall_time)
        except Exception as err:  # noqa: BLE001 - a damaged file: one line naming it (runs before it are in)
            raise DataError(f"{path}: cannot be read as a TensorBoard event file ({err})") from None
        if records == 0 and path.stat().st_size > 0:  # the reader skips what it cannot frame
            raise DataError(f"{path}: cannot be read as a TensorBoard event file (no event record in it)")
    return out


def import_logdir(store, logdir: str | Path, progress: Progress | None = None) -> Imported:
    """Import every run under `logdir`; see `engine.importers` for what is kept and skipped."""
    logdir = Path(logdir).expanduser().resolve()
    runs = find_runs(logdir)
    result = Imported([], [], [])
    if progress:
        progress(0, len(runs), str(logdir))
    for i, folder in enumerate(runs):
        relative = folder.relative_to(logdir).as_posix()
        name = logdir.name if relative == "." else relative
        files = sorted(p for p in folder.glob(EVENT_FILES) if p.is_file())
        signature = {p.name: p.stat().st_size for p in files}
        key = f"tensorboard:{folder}"
        run_id, unchanged = existing(store, key, signature)
        if unchanged:
            result.unchanged.append(run_id)
        else:
            spec = import_spec(name, "tensorboard", key, signature, logdir=str(logdir), run=relative)
            new_id, points = record(store, spec, "completed", read_scalars(folder), run_id)
            (result.updated if run_id else result.created).append(new_id)
            result.points += points
        if progress:
            progress(i + 1, len(runs), name)
    return result
