"""The COCO label map of the shipped detector, as a constant.

Configuration is validated against it without loading the model; the detector checks at
load that the model's embedded ``labelmap.txt`` is exactly this list, so the two cannot
drift. Source: ``labelmap.txt`` inside
``edge_component/models/detector/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite``
(90 lines; ``???`` marks COCO ids the model was not trained on).
"""

from __future__ import annotations

UNUSED = "???"

# Index = the class id the model outputs (0 = person).
COCO_LABELS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", UNUSED, "stop sign", "parking meter", "bench", "bird",
    "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", UNUSED,
    "backpack", "umbrella", UNUSED, UNUSED, "handbag", "tie", "suitcase", "frisbee", "skis",
    "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard",
    "surfboard", "tennis racket", "bottle", UNUSED, "wine glass", "cup", "fork", "knife",
    "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog",
    "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", UNUSED, "dining table",
    UNUSED, UNUSED, "toilet", UNUSED, "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", UNUSED, "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)

# The labels a zone may watch: every real name of the map.
KNOWN_LABELS: frozenset[str] = frozenset(label for label in COCO_LABELS if label != UNUSED)
