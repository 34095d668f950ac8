"""Build ``standing-person.mp4``: a person who stands still at the table for a minute,
leaves, and a second person who enters while the background model still holds the
first one's ghost (issue 11's reproduction of a ghost that swallows the next intrusion).

Derived from ``one-by-one-person-detection.mp4`` (Intel Corporation, sample-videos,
CC BY 4.0), 10 fps, frames re-encoded with OpenCV's VideoWriter (MPEG-4 part 2,
``mp4v``) at 384x216 (INTER_AREA). Source seconds -> output seconds:

- 0.0-9.0 s as is: the empty room, the first person walks to the table (enters at 6 s);
- 60 s of the first person standing at the table: source 9.0-17.0 s played forwards and
  backwards in turn (a ping-pong loop, so no jump at the seams), ending on the source
  frame before 17.0 s, so the cut into the next part is seamless;
- source 17.0-50.0 s as is, shifted by +52 s: the first person leaves (output 72 s), the
  room is empty, the second person enters (output 75 s), stands, leaves (output 97 s).

Ground truth: ``../labels/objects/standing-person.json``. Run from anywhere:
``python examples/clips/make_standing_clip.py [--out PATH]``; the same input and the
same OpenCV build give the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "one-by-one-person-detection.mp4"
OUT = HERE / "standing-person.mp4"
FPS = 10
SIZE = (384, 216)  # w, h: half of the source in each direction
STAND = (90, 170)  # source frames [start, end): the first person standing at the table
STAND_FRAMES = 60 * FPS
TAIL = (170, 500)  # source frames [start, end): leaving, empty room, the second person


def ping_pong(start: int, end: int, count: int) -> list[int]:
    """``count`` frame indices in [start, end) going back and forth, ending at end - 1."""
    out: list[int] = []
    i, step = end - 1, -1
    while len(out) < count:
        out.append(i)
        if not start <= i + step < end:
            step = -step
        i += step
    return out[::-1]


def frame_order() -> list[int]:
    """Source frame index of every output frame."""
    return list(range(0, STAND[0])) + ping_pong(*STAND, STAND_FRAMES) + list(range(*TAIL))


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    cap = cv2.VideoCapture(str(SOURCE))
    frames = []
    while len(frames) < TAIL[1]:
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"{SOURCE}: only {len(frames)} frames decoded, need {TAIL[1]}")
        frames.append(cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA))
    cap.release()
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    if not writer.isOpened():
        raise SystemExit(f"cannot open a mp4v VideoWriter for {args.out}")
    for i in frame_order():
        writer.write(frames[i])
    writer.release()
    return args.out


if __name__ == "__main__":
    out = main()
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(frame_order())} frames at {FPS} fps)")
