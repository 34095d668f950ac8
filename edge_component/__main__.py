"""Command line: run the detector outside Greengrass, as the Greengrass component, or as
an Azure IoT Edge module.

    python -m edge_component run --config examples/demo-config.yaml \\
        --model-dir build/model --thing-name vigil-demo-cam --alerts-out build/alerts.jsonl

With ``--greengrass`` the component follows configuration updates over IPC
(edge_component/config_updates.py) and restarts only the cameras they change. With
``--iotedge`` it runs as an Azure IoT Edge module: configuration from the module twin's
desired properties, followed live (edge_component/twin_updates.py), alerts and telemetry
to the module outputs ``alerts`` and ``telemetry`` (edge_component/delivery/iotedge.py),
thing name = the IoT Edge device id unless ``--thing-name`` is given.

The model bundle: ``$VIGIL_MODEL_DIR`` when set (on a device, the model component's
unpacked bundle; a missing or corrupt one is an error, never a fall back to the seed),
else ``--model-dir`` (edge_component/model/source.py).

Exit status: 0 when every camera finished (every replay reached its end; live cameras
stopped on request), 1 when stopped (SIGTERM, SIGINT) before every replay finished,
2 when a camera failed, or on a configuration, model or source error (with a message
naming the problem).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from .capture.source import SourceError
from .config import ComponentConfig, ConfigError, is_live, load_config, parse_config, parse_json
from .contracts.alerts import AlertValidationError
from .delivery.handover import HandoverJournal, replay_into
from .delivery.ipc import GreengrassIpcPublisher
from .delivery.jsonl import JsonLinesPublisher
from .delivery.outbox import Outbox
from .delivery.outbox_file import OutboxError
from .delivery.sender import OutboxPublisher
from .model.errors import ModelError
from .model.source import MODEL_DIR_ENV, ModelSource, load_model, model_report, resolve_model_source

log = logging.getLogger("vigil.edge")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edge_component", description="Vigil edge detector")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="watch the configured cameras (files are replayed in order)")
    src = run.add_mutually_exclusive_group()
    src.add_argument("--config", help="component configuration, YAML or JSON")
    src.add_argument("--config-json", help="component configuration as a JSON string")
    run.add_argument(
        "--model-dir",
        help=f"model bundle directory (manifest.json + model.tflite); ${MODEL_DIR_ENV}, when set, wins"
        " (on a device: the model component's bundle folder)",
    )
    run.add_argument(
        "--thing-name",
        help="IoT thing name; alerts go to vigil/<thing>/alerts (required, except with --iotedge: the device id)",
    )
    run.add_argument("--source", help="override the first camera's source (file, rtsp:// URL or camera index)")
    run.add_argument("--alerts-out", help="JSON-lines file for alerts (default stdout) when the publisher is jsonl")
    run.add_argument("--snapshots", help="directory for evidence JPEGs (default <state-dir>/snapshots)")
    run.add_argument("--state-dir", default="build/edge-state", help="where snapshots and the outbox live")
    platform = run.add_mutually_exclusive_group()
    platform.add_argument(
        "--greengrass",
        action="store_true",
        help="on a device: read the configuration and publish through Greengrass IPC",
    )
    platform.add_argument(
        "--iotedge",
        action="store_true",
        help="as an Azure IoT Edge module: configuration from the module twin, messages to module outputs",
    )
    return p


# What IoTHubModuleClient.create_from_edge_environment reads (azure-iot-device 2.14.0,
# azure/iot/device/iothub/abstract_clients.py); the IoT Edge runtime sets them in a module.
IOTEDGE_ENVIRONMENT = (
    "IOTEDGE_IOTHUBHOSTNAME",
    "IOTEDGE_DEVICEID",
    "IOTEDGE_MODULEID",
    "IOTEDGE_GATEWAYHOSTNAME",
    "IOTEDGE_MODULEGENERATIONID",
    "IOTEDGE_WORKLOADURI",
    "IOTEDGE_APIVERSION",
)


def _iotedge_client():
    # Created once and shared by the publisher and the twin follower (one connection to the edge hub).
    missing = [name for name in IOTEDGE_ENVIRONMENT if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            "--iotedge: not running as an IoT Edge module (missing environment variables "
            f"{', '.join(missing)}); outside IoT Edge use --config with publisher jsonl or mqtt"
        )
    try:
        from azure.iot.device import IoTHubModuleClient
    except ImportError as exc:
        raise ConfigError(
            f"--iotedge: azure-iot-device cannot be imported ({exc}); "
            "install edge_component/requirements-iotedge.txt (the module image does)"
        ) from None
    try:
        client = IoTHubModuleClient.create_from_edge_environment()
    except Exception as exc:  # the SDK raises many error types (e.g. the workload socket is missing)
        raise ConfigError(
            "--iotedge: the module client cannot be created: the IoT Edge workload API "
            f"{os.environ.get('IOTEDGE_WORKLOADURI')!r} (IOTEDGE_WORKLOADURI) did not answer: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    try:
        client.connect()
    except Exception as exc:  # the SDK raises many error types; the IoT Edge runtime restarts the module
        raise ConfigError(f"--iotedge: cannot connect to the edge hub: {type(exc).__name__}: {exc}") from None
    return client


def _thing_name(args) -> str:
    """--thing-name, or with --iotedge the IoT Edge device id; ConfigError if neither is a valid thing name.

    IoT Hub device ids may hold characters (``.``, ``@``, ``$``, ...) that the alert topic and
    the alert schema's ``thing_name`` refuse; such an id is refused rather than mapped, so
    that two devices can never publish under one name: pass ``--thing-name`` then.
    """
    from .contracts.topics import THING_NAME_PATTERN

    if args.thing_name is not None:
        return args.thing_name  # checked by alert_topic() below, as before
    if not args.iotedge:
        raise ConfigError("give --thing-name (the IoT thing the device connects as)")
    device = os.environ.get("IOTEDGE_DEVICEID", "")
    if not THING_NAME_PATTERN.match(device):
        bad = sorted({c for c in device if not THING_NAME_PATTERN.match(c)})
        raise ConfigError(
            f"IoT Edge device id {device!r} is not a valid thing name (1-128 characters of a-z A-Z 0-9 : _ -"
            f"{'; it has ' + ' '.join(repr(c) for c in bad) if bad else ''}): pass --thing-name NAME "
            "in the module's command"
        )
    return device


def _greengrass_client():
    # Created once and handed to the modules that need it (one IPC connection).
    if not os.environ.get("AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"):
        raise ConfigError(
            "--greengrass: not running as a Greengrass component (no nucleus IPC socket in the "
            "environment); outside Greengrass use --config with publisher jsonl or mqtt"
        )
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    return GreengrassCoreIPCClientV2()


def _writable_dir(path: Path, what: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be created: {exc.strerror or exc}") from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path} is not a writable directory")
    return path


def _check_sources(config: ComponentConfig) -> ComponentConfig:
    for camera in config.cameras:
        if camera.mode != "live" and not is_live(camera.source) and not Path(camera.source).is_file():
            raise SourceError(f"camera {camera.name}: video file not found: {camera.source}")
    return config


def _device_config(raw, model: ModelSource) -> ComponentConfig:
    """A configuration update from Greengrass, checked as at start: keys, files, model."""
    try:
        config = _check_sources(parse_config(raw))
        load_model(model, config.model_file)
    except (SourceError, ModelError) as exc:
        raise ConfigError(str(exc)) from None
    return config


def _module_config(raw, model: ModelSource) -> ComponentConfig:
    """The module twin's configuration, checked as on Greengrass, less what IoT Edge cannot do.

    ``publisher`` and ``mqtt`` are refused: they would never take effect.
    ``evidence.upload_snapshots`` is refused: the uploader signs S3 requests with the
    Greengrass token exchange service's credentials, and an IoT Edge module has none.
    """
    transport = [key for key in ("publisher", "mqtt") if key in raw]
    if transport:  # they would be accepted and never used: the module sends to its outputs
        raise ConfigError(
            f"{' and '.join(transport)}: not used on Azure IoT Edge (the module always sends alerts and telemetry "
            "to its outputs 'alerts' and 'telemetry' through the edge hub); remove them from the module twin"
        )
    config = _device_config(raw, model)
    if config.evidence.upload_snapshots:
        raise ConfigError(
            "evidence.upload_snapshots is not available on Azure IoT Edge: snapshot uploads need AWS "
            "credentials from the Greengrass token exchange service, which an IoT Edge module does not have; "
            "set evidence.upload_snapshots to false (snapshots stay in the module's state directory)"
        )
    return config


def _evidence_uploader(config: ComponentConfig, state: Path, snapshot_dir: Path, thing_name: str, publisher):
    """The started snapshot uploader when ``evidence.upload_snapshots`` is on, else None
    (and no boto3 client). Its queue is ``<state-dir>/evidence.sqlite``, next to the outbox."""
    if not config.evidence.upload_snapshots:
        return None
    from .evidence.uploader import SnapshotUploader

    try:
        uploader = SnapshotUploader(
            state / "evidence.sqlite",
            snapshot_dir,
            thing_name=thing_name,
            bucket=str(config.evidence.bucket),  # present: the config requires it when uploads are on
            publisher=publisher,
            region=config.evidence.region,
        )
    except OutboxError as exc:  # evidence is worth less than the alerts: run without uploads
        log.error("evidence uploads off for this run: %s", exc)
        return None
    return uploader.start()


def _report_model_error(ipc, thing_name: str, model: ModelSource, model_file: str | None, exc: ModelError) -> None:
    """One telemetry message with ``model.load_error`` before exiting, so the canary check
    reads the reason and need not wait for the core device to turn UNHEALTHY. Best effort:
    a failure to send it is logged, the exit stays the model error's."""
    from datetime import UTC, datetime

    from .contracts.topics import telemetry_topic
    from .runtime import TELEMETRY_SCHEMA_VERSION

    message = {
        "schema_version": TELEMETRY_SCHEMA_VERSION,
        "thing_name": thing_name,
        "sent_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "cameras": {},
        "model": {"sha256": None, "version": model.version, "file": model_file, "load_error": str(exc)},
    }
    try:
        GreengrassIpcPublisher(ipc).publish(telemetry_topic(thing_name), message)
    except Exception as send_exc:  # noqa: BLE001 - the model error is what the exit reports
        log.warning("model load error not reported in telemetry: %s", send_exc)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = _parser().parse_args(argv)
    ipc = edge = twin = None
    try:
        if args.greengrass:
            ipc = _greengrass_client()
        if args.iotedge:
            edge = _iotedge_client()
        thing_name = _thing_name(args)
        model = resolve_model_source(args.model_dir)  # the twin's configuration is checked against it
        if args.config:
            config = load_config(args.config)
        elif args.config_json is None:
            if edge is not None:
                from .twin_updates import TwinConfigurationFollower

                twin = TwinConfigurationFollower(edge, lambda raw: _module_config(raw, model))
                config = twin.start()
            elif ipc is None:
                raise ConfigError(
                    "give --config or --config-json (or --greengrass or --iotedge to read the component configuration)"
                )
            else:
                config = parse_config(ipc.get_configuration(key_path=[]).value or {})
        else:
            config = parse_config(parse_json(args.config_json, "--config-json"))
        if args.source:
            first = config.cameras[0].model_copy(update={"source": args.source})
            config = config.model_copy(update={"cameras": [first, *config.cameras[1:]]})
        # Fail here, with the reason, before any camera starts (on a device: the component goes ERRORED).
        try:
            bundle = load_model(model, config.model_file)
        except ModelError as exc:
            if ipc is not None:
                _report_model_error(ipc, thing_name, model, config.model_file, exc)
            raise
        log.info(
            "model bundle %s (from %s): %s sha256 %s, version %s",
            model.directory,
            model.origin,
            bundle.manifest.model_file,
            bundle.sha256,
            model.version,
        )
        reports = {config.model_file: model_report(model, bundle)}

        def model_info(model_file: str | None) -> dict:
            # A configuration update may pick another of the bundle's files (checked before it applies).
            if model_file not in reports:
                reports[model_file] = model_report(model, load_model(model, model_file))
            return reports[model_file]

        _check_sources(config)
        state = _writable_dir(Path(args.state_dir), "--state-dir")
        snapshot_dir = _writable_dir(Path(args.snapshots or state / "snapshots"), "snapshot directory")
        if edge is not None:
            from .delivery.iotedge import IoTEdgePublisher

            transport = IoTEdgePublisher(edge)
        elif config.publisher == "greengrass" or ipc is not None:
            transport = GreengrassIpcPublisher(ipc or _greengrass_client())
        elif config.publisher == "mqtt":
            # Imported here: paho-mqtt 2 is not in the IoT Edge module image (azure-iot-device needs paho-mqtt<2).
            from .delivery.mqtt import MqttPublisher

            m = config.mqtt
            transport = MqttPublisher(
                m.host, m.port, client_id=thing_name, ca_file=m.ca_file, cert_file=m.cert_file, key_file=m.key_file
            )
        else:
            try:
                transport = JsonLinesPublisher(args.alerts_out)
            except OSError as exc:
                raise ConfigError(
                    f"--alerts-out {args.alerts_out}: cannot open for writing: {exc.strerror or exc}"
                ) from None
        # Every alert is stored on disk before it is sent and removed only once acknowledged;
        # what Greengrass took is journalled and, after a restart, handed over again first.
        outbox = Outbox(state / "outbox.sqlite", config.outbox_max_messages)
        try:
            journal = HandoverJournal(
                state / "handover.sqlite",
                # Only Greengrass lets an alert go before IoT Core has it; MQTT and the IoT Edge hub wait for PUBACK.
                replay_s=config.handover_replay_s if isinstance(transport, GreengrassIpcPublisher) else 0,
                max_messages=config.handover_max_messages,
            )
        except BaseException:
            outbox.close()
            raise
        unstored: list[tuple[str, str, float]] = []  # replayed, but a full disk kept the outbox from storing them
        replay_into(journal, outbox, thing_name=thing_name, unstored=unstored)  # before the sender starts
        publisher = OutboxPublisher(outbox, transport, journal=journal)
        publisher.hold_replayed(unstored)
        from .contracts.topics import alert_topic
        from .runtime import Supervisor

        alert_topic(thing_name)  # a bad thing name is a configuration error, not a crash loop
        stop = threading.Event()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:  # Greengrass stops a component with SIGTERM
            signal.signal(sig, lambda *_: stop.set())
        evidence = _evidence_uploader(config, state, snapshot_dir, thing_name, publisher)
        supervisor = Supervisor(
            config,
            model_dir=model.directory,
            thing_name=thing_name,
            publisher=publisher,
            snapshot_dir=snapshot_dir,
            telemetry_every_s=config.telemetry_every_s,
            delivery_stats=publisher.stats,
            evidence=evidence,
            model_info=model_info,
        )
        follower = None
        if ipc is not None and args.config is None and args.config_json is None:
            from .config_updates import ConfigurationFollower

            follower = ConfigurationFollower(ipc, lambda raw: _device_config(raw, model), supervisor.update_config)
            follower.start()
        if twin is not None:
            twin.follow(supervisor.update_config)
        try:
            final = supervisor.run(stop)
        finally:
            if follower is not None:
                follower.close()
            if twin is not None:
                twin.close()
            if supervisor.evidence is not None:  # before the publisher: its last update goes out too
                supervisor.evidence.close(drain_timeout_s=10.0)
            publisher.close(drain_timeout_s=10.0)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return _summary(final["cameras"], {name: cs.replay for name, cs in supervisor.cameras.items()})
    except (ConfigError, ModelError, SourceError, AlertValidationError, OutboxError, ValueError) as exc:
        log.error("%s", exc)
        if edge is not None:  # started before the error; the publisher (if built) already shut it down
            try:
                edge.shutdown()
            except Exception:  # noqa: BLE001, S110 - exiting on an error already logged
                pass
        return 2


def _summary(cameras: dict, replay: dict[str, bool]) -> int:
    """Log each camera's end and return the exit status (see the module docstring)."""
    for name, cam in cameras.items():
        log.info(
            "camera %s: %s, %d frames, %d analysed, %d dropped, %d reconnects, %d crashes, %d events%s",
            name,
            cam["state"],
            cam["frames_in"],
            cam["analysed"],
            cam["dropped"],
            cam["reconnects"],
            cam["crashes"],
            cam["events"],
            f"; last error: {cam['last_error']}" if cam["last_error"] else "",
        )
    failed = [name for name, cam in cameras.items() if cam["state"] == "failed"]
    if failed:
        log.error("cameras that failed: %s", ", ".join(failed))
        return 2
    unfinished = [name for name, cam in cameras.items() if cam["state"] != "done" and replay.get(name)]
    if unfinished:
        log.warning("stopped before these replays finished: %s", ", ".join(unfinished))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
