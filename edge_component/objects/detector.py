"""The object detector: COCO SSD MobileNet v1 (uint8) run with LiteRT on one crop.

:class:`ObjectDetector` loads the model once (digest checked, one interpreter thread) and
answers :meth:`ObjectDetector.detect` for one image: usually a square region around
motion (:mod:`edge_component.objects.regions`), resized to the model's 300x300 input.
Boxes come back normalised to that image, so the caller maps them to the frame.

Source of the model and its tensors: ``edge_component/models/detector/README.md``.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .labels import COCO_LABELS, UNUSED

MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "detector"
MODEL_FILE = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
MODEL_PATH = MODEL_DIR / MODEL_FILE
MODEL_SHA256 = "61d598093ed03ed41aa47c3a39a28ac01e960d6a810a5419b9a5016a1e9c469b"
INPUT_SIZE = 300  # px, square


class DetectorModelError(ValueError):
    """The detector model file is missing, corrupt, not the expected one, or has an
    unexpected interface; the message says which and names the file."""


@dataclass(frozen=True, slots=True)
class Detection:
    """One object found in one image.

    ``box`` is ``(xmin, ymin, xmax, ymax)``, each 0..1 of the image's width/height
    (origin top-left); ``score`` is the model's confidence 0..1; ``label`` a COCO name.
    """

    label: str
    score: float
    box: tuple[float, float, float, float]


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_label_map(path: str | Path) -> tuple[str, ...]:
    """The label map embedded in a TFLite model as metadata (the file is also a zip
    archive holding ``labelmap.txt``, one name per class id). DetectorModelError if the
    file has none."""
    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read("labelmap.txt").decode("utf-8")
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        raise DetectorModelError(f"detector model {path} has no readable embedded labelmap.txt ({exc})") from None
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def label_map_sha256(labels: tuple[str, ...]) -> str:
    """Hex SHA-256 of a label map as text: the names one a line, UTF-8, each ending in ``\n``."""
    return hashlib.sha256("".join(f"{label}\n" for label in labels).encode("utf-8")).hexdigest()


def check_record(record, detector: ObjectDetector) -> None:
    """Refuse a ``detector`` that is not the one a model bundle's manifest records
    (``record``: :class:`edge_component.contracts.manifest.DetectorRecord`, or None for a
    bundle that records none). DetectorModelError names what differs."""
    if record is None:
        return
    actual = {
        "file": detector.path.name,
        "sha256": detector.sha256,
        "label_map_sha256": label_map_sha256(detector.labels),
    }
    wrong = [
        f"{key} {actual[key]!r}, the bundle says {getattr(record, key)!r}"
        for key in actual
        if actual[key] != getattr(record, key)
    ]
    if wrong:
        raise DetectorModelError(
            f"detector model {detector.path} is not the one the model bundle was made for: " + "; ".join(wrong)
        )


def _interpreter(path: Path, num_threads: int):
    # LiteRT is the edge interpreter (DESIGN decision 1); tflite-runtime is the fallback.
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - only where LiteRT has no wheel
        from tflite_runtime.interpreter import Interpreter
    return Interpreter(model_path=str(path), num_threads=num_threads)


class ObjectDetector:
    """COCO SSD MobileNet v1 uint8 on LiteRT, loaded once per camera worker.

    ``model_path`` defaults to the model shipped in ``edge_component/models/detector/``;
    ``expected_sha256`` to its digest. Raises :class:`DetectorModelError` when the file is
    missing, its SHA-256 differs (a corrupt or substituted file is refused before it is
    parsed), its embedded label map differs from :data:`labels.COCO_LABELS`, or its
    tensors are not 1x300x300x3 uint8 in and the four post-processing outputs out.
    ``calls`` counts :meth:`detect` invocations (for the benchmarks).
    """

    def __init__(self, model_path: str | Path = MODEL_PATH, expected_sha256: str = MODEL_SHA256, num_threads: int = 1):
        path = Path(model_path)
        if not path.is_file():
            raise DetectorModelError(f"detector model {path} does not exist")
        actual = sha256_of(path)
        if actual != expected_sha256.lower():
            raise DetectorModelError(
                f"detector model {path} has SHA-256 {actual}, expected {expected_sha256}: "
                "the file is corrupt or not the model this component was built for"
            )
        labels = read_label_map(path)
        if labels != COCO_LABELS:
            raise DetectorModelError(
                f"detector model {path} embeds a label map of {len(labels)} names that differs from "
                f"the {len(COCO_LABELS)} COCO names the configuration is validated against"
            )
        self.path = path
        self.sha256 = actual
        self.labels = labels
        self._interp = _interpreter(path, num_threads)
        self._interp.allocate_tensors()
        inp = self._interp.get_input_details()
        out = self._interp.get_output_details()
        if (
            len(inp) != 1
            or tuple(inp[0]["shape"]) != (1, INPUT_SIZE, INPUT_SIZE, 3)
            or inp[0]["dtype"] != np.uint8
            or len(out) != 4
        ):
            raise DetectorModelError(
                f"detector model {path} has input {[(tuple(d['shape']), d['dtype'].__name__) for d in inp]} "
                f"and {len(out)} outputs; expected one 1x{INPUT_SIZE}x{INPUT_SIZE}x3 uint8 input and 4 outputs"
            )
        self._input = inp[0]["index"]
        self._boxes, self._classes, self._scores, self._count = (d["index"] for d in out)
        self.calls = 0

    def detect(self, image_bgr: np.ndarray, min_score: float = 0.0) -> list[Detection]:
        """Objects in one image, best score first.

        ``image_bgr``: uint8, H x W x 3 (BGR, as OpenCV decodes) or H x W (grey, e.g. an
        infrared frame), any size; it is resized to 300x300, so a non-square image is
        stretched (pass square regions). Detections scoring below ``min_score`` (0..1)
        and ids the model was not trained on (``???``) are dropped; at most 10 come back.
        Raises ValueError for an image of another dtype or shape.
        """
        if (
            image_bgr.dtype != np.uint8
            or image_bgr.ndim not in (2, 3)
            or (image_bgr.ndim == 3 and image_bgr.shape[2] != 3)
            or min(image_bgr.shape[:2]) < 1
        ):
            raise ValueError(
                f"detect() takes a uint8 H x W x 3 BGR or H x W grey image, got {image_bgr.dtype} {image_bgr.shape}"
            )
        small = cv2.resize(image_bgr, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
        rgb = cv2.cvtColor(small, cv2.COLOR_GRAY2RGB if small.ndim == 2 else cv2.COLOR_BGR2RGB)
        self._interp.set_tensor(self._input, rgb[np.newaxis])
        self._interp.invoke()
        self.calls += 1
        boxes = self._interp.get_tensor(self._boxes)[0]
        classes = self._interp.get_tensor(self._classes)[0]
        scores = self._interp.get_tensor(self._scores)[0]
        count = int(self._interp.get_tensor(self._count)[0])
        found = []
        for i in range(min(count, len(scores))):
            score = float(scores[i])
            cls = int(classes[i])
            if score < min_score or not 0 <= cls < len(self.labels) or self.labels[cls] == UNUSED:
                continue
            ymin, xmin, ymax, xmax = (float(np.clip(v, 0.0, 1.0)) for v in boxes[i])
            if xmax <= xmin or ymax <= ymin:
                continue
            found.append(Detection(self.labels[cls], score, (xmin, ymin, xmax, ymax)))
        found.sort(key=lambda d: -d.score)
        return found
