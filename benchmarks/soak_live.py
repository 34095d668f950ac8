"""Soak run: the edge component watching a live stream for a long time (issue 16).

ffmpeg (Debian's ``ffmpeg``) serves the room clip in a loop, in real time, as MPEG-TS over
UDP on 127.0.0.1; ``python -m edge_component run`` watches it as a live camera with one
zone over the whole room and a JSON-lines publisher (alerts and telemetry to a file).
Every 10 s the component's process tree (the supervisor and its camera worker) is
sampled from /proc (psutil when installed): resident memory summed over the tree (pages
shared between the processes count once per process), open file descriptors, and CPU
seconds (user + system). At the end it prints:

- RSS first/last/max (MiB) and its slope (MiB per hour, least-squares line);
- open fds first/last/max;
- alerts raised (``start`` events) against intrusion passes streamed while the camera
  was watching (6 per 139.4-s loop, from examples/labels/one-by-one-person-detection.json);
- CPU seconds of the component per second of live video, per camera, and beside it the
  CPU of decoding alone: a plain OpenCV loop reading every frame of the same stream for a
  fixed period, sampled the same way.

Run: ``make soak`` (30 minutes of stream), or
``.venv/bin/python benchmarks/soak_live.py --minutes 3``. Loopback only; ffmpeg, the
component and the decoder are stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "examples/clips/one-by-one-person-detection.mp4"
LABELS = REPO / "examples/labels/one-by-one-person-detection.json"
MODEL_DIR = REPO / "edge_component/models/seed"
LOOP_S = 139.4  # 1394 frames at 10 frames/s
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")

try:
    import psutil
except ImportError:
    psutil = None
# A process can end between listing the tree and reading it.
_GONE: tuple[type[Exception], ...] = (OSError,) if psutil is None else (OSError, psutil.Error)


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (read from /proc/*/stat's ppid field)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo and len(out) < 1000:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def sample(pid: int) -> dict[str, float]:
    """One sample of a process tree: rss_mib, fds, cpu_s (user + system), procs."""
    rss = fds = 0
    cpu = 0.0
    pids = _tree(pid)
    for p in pids:
        try:
            if psutil is not None:
                proc = psutil.Process(p)
                rss += proc.memory_info().rss
                t = proc.cpu_times()
                cpu += t.user + t.system
            else:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                cpu += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
                rss += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except _GONE:
            continue
    return {"t": time.monotonic(), "rss_mib": rss / 2**20, "fds": fds, "cpu_s": cpu, "procs": len(pids)}


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen | None, grace_s: float = 20.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def serve(port: int, log) -> subprocess.Popen:
    """ffmpeg looping the clip in real time as MPEG-TS to udp://127.0.0.1:port."""
    return subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(CLIP)]
        + ["-c", "copy", "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def _linear_slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else float("nan")


def _watch(pid: int, seconds: float, every_s: float, alive) -> list[dict[str, float]]:
    """Samples of ``pid``'s tree every ``every_s`` for ``seconds`` (bounded in count too)."""
    samples = [sample(pid)]
    deadline = samples[0]["t"] + seconds
    for _ in range(int(seconds / every_s) + 2):
        if time.monotonic() >= deadline or not alive():
            break
        time.sleep(max(0.0, min(every_s, deadline - time.monotonic())))
        samples.append(sample(pid))
    return samples


def _cpu_per_s(samples: list[dict[str, float]], skip_s: float) -> float:
    """CPU seconds per wall second, from the first sample ``skip_s`` after the start (start-up excluded)."""
    b = samples[-1]
    a = next((x for x in samples if x["t"] - samples[0]["t"] >= skip_s), b)
    return (b["cpu_s"] - a["cpu_s"]) / (b["t"] - a["t"]) if b["t"] > a["t"] else float("nan")


def _passes(stream_t0: float, watch_from: float, watch_to: float, tail_s: float) -> int:
    """Intrusion passes that began after ``watch_from`` and ended ``tail_s`` before ``watch_to``."""
    intervals = json.loads(LABELS.read_text())["abnormal"]
    count = 0
    for k in range(int((watch_to - stream_t0) / LOOP_S) + 1):
        for iv in intervals:
            start = stream_t0 + k * LOOP_S + iv["start_s"]
            if start >= watch_from and start + (iv["end_s"] - iv["start_s"]) + tail_s <= watch_to:
                count += 1
    return count


def run_component(url: str, minutes: float, every_s: float, work: Path) -> dict:
    """The component on ``url`` for ``minutes``; its samples, alerts and watched period."""
    config = {
        "publisher": "jsonl",
        "detection_fps": 5,
        "telemetry_every_s": 5,
        "cameras": [
            {
                "name": "soak-room",
                "source": url,
                "zones": [{"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
            }
        ],
        "decision": {"min_consecutive_windows": 2, "end_after_quiet_s": 2.0, "cooldown_s": 1.0},
    }
    alerts = work / "alerts.jsonl"
    cmd = [sys.executable, "-m", "edge_component", "run", "--config-json", json.dumps(config)]
    cmd += ["--model-dir", str(MODEL_DIR), "--thing-name", "vigil-soak", "--alerts-out", str(alerts)]
    cmd += ["--state-dir", str(work / "state")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with open(work / "component.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log, env=env)
        try:
            started = time.monotonic()
            samples = _watch(proc.pid, minutes * 60, every_s, lambda: proc.poll() is None)
            crashed = proc.poll()
        finally:
            _stop(proc)
    lines = [json.loads(line) for line in alerts.read_text().splitlines() if line.strip()] if alerts.exists() else []
    wall_now, mono_now = time.time(), time.monotonic()
    starts = [m for m in lines if m["topic"].endswith("/alerts") and m["message"].get("event_type") == "start"]
    first_frame = None
    for m in lines:  # telemetry every 5 s: the first one with frames marks when watching began
        cams = m["message"].get("cameras", {}) if m["topic"].endswith("/telemetry") else {}
        if any(c.get("frames_in", 0) > 0 for c in cams.values()):
            first_frame = m["message"].get("time") or m["message"].get("sent_at")
            break
    return {
        "samples": samples,
        "starts": starts,
        "telemetry_first": first_frame,
        "started": started,
        "exit_during_run": crashed,
        "exit": proc.returncode,
        "clock": (wall_now, mono_now),
    }


DECODE = """
import sys, time, cv2
cap = cv2.VideoCapture(sys.argv[1], cv2.CAP_FFMPEG)
end = time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < end and n < 10**7:
    ok, _ = cap.read()
    if not ok:
        break
    n += 1
print(n)
"""


def run_decoder(url: str, seconds: float, every_s: float) -> tuple[list[dict[str, float]], int]:
    """A plain OpenCV read-every-frame loop on ``url`` for ``seconds``: samples, frames read."""
    proc = subprocess.Popen(
        [sys.executable, "-c", DECODE, url, str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        samples = _watch(proc.pid, seconds, every_s, lambda: proc.poll() is None)
        out, _ = proc.communicate(timeout=30)
    finally:
        _stop(proc)
    return samples, int(out.strip() or 0)


def _parse_time(value) -> float | None:
    if not isinstance(value, str):
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def report(comp: dict, stream_t0: float, dec: list[dict[str, float]], frames: int, dec_s: float) -> None:
    s = comp["samples"]
    rss = [x["rss_mib"] for x in s]
    fds = [x["fds"] for x in s]
    hours = [(x["t"] - s[0]["t"]) / 3600 for x in s]
    live_s = s[-1]["t"] - s[0]["t"]
    warm = min(args.warmup, live_s / 2)  # imports, model load, first connection
    w = [i for i, h in enumerate(hours) if h * 3600 >= warm]
    print(f"samples: {len(s)} over {live_s / 60:.1f} min of live stream, every {args.every:g} s;", end=" ")
    print(f"processes in the tree: {s[-1]['procs']}; memory from {'psutil' if psutil else '/proc'}")
    print(f"RSS (MiB, summed over the tree): first {rss[0]:.1f}, last {rss[-1]:.1f}, max {max(rss):.1f}", end="")
    print(f"; after the first {warm:.0f} s: first {rss[w[0]]:.1f}, slope", end=" ")
    print(f"{_linear_slope([hours[i] for i in w], [rss[i] for i in w]):+.1f} MiB/h (least squares, {len(w)} samples)")
    print(f"open fds: first {fds[0]}, after {warm:.0f} s {fds[w[0]]}, last {fds[-1]}, max {max(fds)}")
    wall_now, mono_now = comp["clock"]
    seen = _parse_time(comp["telemetry_first"])
    watch_from = seen - wall_now + mono_now if seen is not None else comp["started"]
    watch_from = max(watch_from - 5.0, stream_t0)  # telemetry every 5 s: the first frame came up to 5 s earlier
    passes = _passes(stream_t0, watch_from, s[-1]["t"], tail_s=5.0)
    print(
        f"alerts raised: {len(comp['starts'])} start events; intrusion passes streamed while watching: {passes}"
        f" (6 per {LOOP_S:g}-s loop; watching from {watch_from - stream_t0:.0f} s into the stream)"
    )
    cpu = _cpu_per_s(s, warm)
    dcpu = _cpu_per_s(dec, args.every)
    print(f"CPU of the component: {cpu:.3f} s per second of live video, per camera (1 camera; after {warm:.0f} s)")
    print(
        f"CPU of decoding alone (OpenCV read loop, {dec_s:g} s, {frames} frames = {frames / dec_s:.1f} frames/s):"
        f" {dcpu:.3f} s per second; component/decode ratio {cpu / dcpu:.2f}"
    )
    if comp["exit_during_run"] is not None:
        print(f"warning: the component exited during the run with status {comp['exit_during_run']}")
    print(f"component exit status after SIGTERM: {comp['exit']}")


def main() -> int:
    global args
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0, help="minutes of live stream (default 30)")
    p.add_argument("--every", type=float, default=10.0, help="seconds between samples (default 10)")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds left out of slope and CPU (default 60)")
    p.add_argument("--decode-seconds", type=float, default=60.0, help="length of the decode-only run (default 60)")
    args = p.parse_args()
    if not 0 < args.minutes <= 24 * 60 or not 1 <= args.every <= 600 or not 10 <= args.decode_seconds <= 3600:
        p.error("--minutes must be in (0, 1440], --every in [1, 600], --decode-seconds in [10, 3600]")
    if shutil.which("ffmpeg") is None:
        sys.exit("error: ffmpeg is missing; `make soak` installs it (Debian package ffmpeg)")
    port = _free_udp_port()
    url = f"udp://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="vigil-soak-") as tmp:
        work = Path(tmp)
        ffmpeg = None
        with open(work / "ffmpeg.log", "wb") as flog:
            try:
                ffmpeg = serve(port, flog)
                stream_t0 = time.monotonic()
                print(f"== soak: {CLIP.name} looped by ffmpeg to {url}, {args.minutes:g} min", flush=True)
                comp = run_component(url, args.minutes, args.every, work)
                print(f"== decode only: {args.decode_seconds:g} s", flush=True)
                dec, frames = run_decoder(url, args.decode_seconds, args.every)
                if ffmpeg.poll() is not None:
                    print(f"warning: ffmpeg exited early ({ffmpeg.returncode}): {(work / 'ffmpeg.log').read_text()}")
            finally:
                _stop(ffmpeg, grace_s=5)
        if len(comp["samples"]) < 3:
            print((work / "component.log").read_text()[-3000:])
            sys.exit("error: the component stopped before three samples were taken (its log is above)")
        report(comp, stream_t0, dec, frames, args.decode_seconds)
        errors = [ln for ln in (work / "component.log").read_text().splitlines() if " ERROR " in ln][:5]
        for ln in errors:
            print("component error:", ln)
    return 0


if __name__ == "__main__":
    sys.exit(main())
