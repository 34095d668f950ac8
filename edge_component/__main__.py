"""Command line: run the detector outside Greengrass, or as the Greengrass component.

    python -m edge_component run --config examples/demo-config.yaml \\
        --model-dir build/model --thing-name vigil-demo-cam --alerts-out build/alerts.jsonl

Exit status: 0 on success, 2 on a configuration, model or source error (with a
message naming the problem).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .capture import SourceError
from .config import ConfigError, load_config, parse_config
from .contracts.alerts import AlertValidationError
from .model import ModelError, load_bundle
from .publishers import GreengrassIpcPublisher, JsonLinesPublisher
from .snapshot import SnapshotStore

log = logging.getLogger("vigil.edge")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edge_component", description="Vigil edge detector")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="watch the configured cameras (files are replayed in order)")
    src = run.add_mutually_exclusive_group()
    src.add_argument("--config", help="component configuration, YAML or JSON")
    src.add_argument("--config-json", help="component configuration as a JSON string")
    run.add_argument("--model-dir", required=True, help="model bundle directory (manifest.json + model.tflite)")
    run.add_argument("--thing-name", required=True, help="IoT thing name; alerts go to vigil/<thing>/alerts")
    run.add_argument("--source", help="override the first camera's source (file, rtsp:// URL or camera index)")
    run.add_argument("--alerts-out", help="JSON-lines file for alerts (default stdout) when the publisher is jsonl")
    run.add_argument("--snapshots", help="directory for evidence JPEGs (default <state-dir>/snapshots)")
    run.add_argument("--state-dir", default="build/edge-state", help="where snapshots and the outbox live")
    run.add_argument("--greengrass", action="store_true",
                     help="on a device: read the configuration and publish through Greengrass IPC")
    return p


def _greengrass_client():
    # Created once and handed to the modules that need it (one IPC connection).
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    return GreengrassCoreIPCClientV2()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = _parser().parse_args(argv)
    ipc = None
    try:
        if args.greengrass:
            ipc = _greengrass_client()
        if args.config:
            config = load_config(args.config)
        elif args.config_json is None:
            if ipc is None:
                raise ConfigError("give --config or --config-json (or --greengrass to read the component configuration)")
            config = parse_config(ipc.get_configuration(key_path=[]).value or {})
        else:
            try:
                raw = json.loads(args.config_json)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--config-json is not valid JSON: {exc}") from None
            config = parse_config(raw if isinstance(raw, dict) else {})
        if args.source:
            first = config.cameras[0].model_copy(update={"source": args.source})
            config = config.model_copy(update={"cameras": [first, *config.cameras[1:]]})
        bundle = load_bundle(args.model_dir)
        state = Path(args.state_dir)
        snapshots = SnapshotStore(args.snapshots or state / "snapshots", config.snapshot_max_files)
        if config.publisher == "greengrass" or ipc is not None:
            publisher = GreengrassIpcPublisher(ipc or _greengrass_client())
        else:
            publisher = JsonLinesPublisher(args.alerts_out)
        from .detector import Detector

        detector = Detector(config, bundle, publisher, thing_name=args.thing_name, snapshots=snapshots)
        try:
            for camera in config.cameras:
                report = detector.run_replay(camera)
                log.info("camera %s: %d frames in %.1fs (%.0f fps), %d events, %d messages not sent",
                         camera.name, report.stats.frames_in, report.wall_s, report.source_fps,
                         len(report.starts), len(report.failed))
        finally:
            publisher.close()
    except (ConfigError, ModelError, SourceError, AlertValidationError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
