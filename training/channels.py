"""The job's data: SageMaker channels read into datasets, and the training/validation split.

A channel (``SM_CHANNEL_<NAME>``, or a path given on the command line) holds either
feature CSVs (:mod:`training.dataset` format) or label files (``*.json``) with their
clips, which are featurised with the edge's own code; a channel holding both is refused.

A channel's ``feedback/`` folder holds the rows users' verdicts on alerts made (the
feedback Lambda writes ``train/feedback/<stage>/v<feature version>/<thing>/<event>.csv``,
each file one event, all one class). Its files of this featuriser's
:data:`FEATURE_VERSION` join the channel's data, whichever kind the channel holds; files
of other versions are left out (logged): their numbers mean something else. A feedback
file that does not read (say a value beyond float32's range) is left out, logged by name,
so one bad event does not stop every run; the channel's own CSVs still fail loudly.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from edge_component.analysis.features import FEATURE_VERSION
from training.dataset import Dataset, DatasetError, featurize_labels, read_dataset

log = logging.getLogger("vigil.train")


def _names(paths: list[Path], most: int = 3) -> str:
    shown = ", ".join(p.name for p in paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


FEEDBACK_DIR = "feedback"


def _concat(parts: list[Dataset]) -> Dataset:
    return Dataset(*(np.concatenate([getattr(d, f) for d in parts]) for f in ("X", "y", "clips", "times")))


def feedback_files(path: Path) -> list[Path]:
    """The feedback CSVs under ``path/feedback/`` of this featuriser's version, sorted."""
    root = path / FEEDBACK_DIR
    if not root.is_dir():
        return []
    every = sorted(root.rglob("*.csv"))
    mine = sorted(root.glob(f"*/v{FEATURE_VERSION}/**/*.csv"))
    if len(every) > len(mine):
        log.warning(
            "%d feedback file(s) under %s are of another feature version than %s; left out",
            len(every) - len(mine),
            root,
            FEATURE_VERSION,
        )
    return mine


def _read_feedback(files: list[Path]) -> list[Dataset]:
    """The feedback files that read; one that does not is left out, logged by name: a
    file the service wrote from a device's numbers must not stop every later run (the
    user's own CSVs, read elsewhere, still fail loudly)."""
    out = []
    for f in files:
        try:
            out.append(read_dataset(f, both_classes=False))
        except DatasetError as err:
            log.warning("feedback file %s left out: %s", f, err)
    return out


def load_channel(path: str | Path, channel: str = "training") -> Dataset:
    """Read every feature CSV in ``path``, or featurise every label file in it, plus the
    feedback rows under ``path/feedback/`` (see the module docstring); a channel holding
    both kinds is refused (DatasetError naming both)."""
    path = Path(path)
    if path.is_file():
        return read_dataset(path) if path.suffix == ".csv" else featurize_labels([path])
    if not path.is_dir():
        raise DatasetError(f"{channel} channel {path} does not exist")
    csvs, labels = sorted(path.glob("*.csv")), sorted(path.glob("*.json"))
    if csvs and labels:
        raise DatasetError(
            f"{channel} channel {path} mixes feature CSVs ({_names(csvs)}) and label files "
            f"({_names(labels)}); a channel holds one kind: move the other to its own channel"
        )
    feedback = _read_feedback(feedback_files(path))
    if feedback:
        log.info("%s channel: %d feedback rows from %d event(s)", channel, sum(map(len, feedback)), len(feedback))
    if csvs:
        return _concat([read_dataset(c) for c in csvs] + feedback)
    if not labels:
        if feedback:
            return _concat(feedback)
        raise DatasetError(f"{channel} channel {path} holds no *.csv dataset and no *.json label file")
    return _concat([featurize_labels(labels), *feedback]) if feedback else featurize_labels(labels)


def split_blocks(ds: Dataset, every: int, block_s: float = 10.0) -> tuple[Dataset, Dataset]:
    """Split by contiguous 10-s blocks of each clip (every Nth block validates), so
    neighbouring, nearly identical windows do not sit on both sides of the split."""
    block = (ds.times // block_s).astype(int)
    val = (block % every) == (every // 2)
    return ds.subset(~val), ds.subset(val)


def both_classes(**splits: Dataset) -> None:
    """Raise DatasetError naming the first split (by keyword) that holds a single class."""
    for name, d in splits.items():
        if len(set(d.y.tolist())) < 2:
            raise DatasetError(f"the {name} split has a single class; add labelled footage of both kinds")


def load_splits(args: argparse.Namespace) -> tuple[Dataset, Dataset, Dataset, Dataset | None]:
    """``(all training-channel data, training split, validation split, test channel or
    None)``; raises DatasetError when a split lacks a class."""
    data = load_channel(args.train)
    if args.validation:
        train_ds, val_ds = data, load_channel(args.validation, "validation")
    else:
        train_ds, val_ds = split_blocks(data, args.validation_every)
    both_classes(training=train_ds, validation=val_ds)
    test_ds = load_channel(args.test, "test") if args.test and str(args.test).lower() != "none" else None
    log.info(
        "windows: %d train (%d abnormal), %d validation (%d abnormal), clips %s; test clips %s",
        len(train_ds),
        int(train_ds.y.sum()),
        len(val_ds),
        int(val_ds.y.sum()),
        sorted(set(data.clips.tolist())),
        sorted(set(test_ds.clips.tolist())) if test_ds is not None else "none",
    )
    return data, train_ds, val_ds, test_ds
