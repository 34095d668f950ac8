"""Fixtures of the evidence tests: a short segment of the example clip (its first
intrusion only), moto's S3 in server mode over real HTTP, and a stand-in for the
Greengrass token exchange service.

The token exchange service "provides two environment variables,
AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN ... When a
component creates an AWS SDK client, the client recognizes this URI environment variable
and uses the token in the AWS_CONTAINER_AUTHORIZATION_TOKEN to connect to the token
exchange service and retrieve AWS credentials"
(https://docs.aws.amazon.com/greengrass/v2/developerguide/token-exchange-service-component.html).
The stand-in answers as the ECS container credentials endpoint does (AccessKeyId,
SecretAccessKey, Token, Expiration), and only to that token, so a test passes only if
boto3's default chain took the component's credentials from it.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import cv2
import pytest
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parents[3]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
SEED = REPO / "edge_component" / "models" / "seed"
BUCKET = "vigil-evidence-test"
TES_TOKEN = "gg-tes-token-1234"
TES_KEY_ID = "ASIATESTTOKENEXCHANGE"


@pytest.fixture(scope="session")
def segment(tmp_path_factory) -> Path:
    """The clip's first 22 s (220 frames at 10 fps): one intrusion (6-20 s), one event."""
    out = tmp_path_factory.mktemp("clip") / "first-intrusion.mp4"
    src = cv2.VideoCapture(str(CLIP))
    fps = src.get(cv2.CAP_PROP_FPS)
    size = (int(src.get(cv2.CAP_PROP_FRAME_WIDTH)), int(src.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for _ in range(int(22 * fps)):
        ok, frame = src.read()
        assert ok, "the example clip is shorter than 22 s"
        writer.write(frame)
    writer.release()
    src.release()
    return out


class _Tes(BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.hits.append(self.headers.get("Authorization", ""))  # type: ignore[attr-defined]
        if self.headers.get("Authorization") != TES_TOKEN:
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps(
            {
                "AccessKeyId": TES_KEY_ID,
                "SecretAccessKey": "tes-secret",
                "Token": "tes-session-token",
                "Expiration": "2099-01-01T00:00:00Z",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def tes():
    """The token exchange service stand-in: its URL; ``.hits`` the Authorization headers it got."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Tes)
    server.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def tes_url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/2016-11-01/credentialprovider/"


@pytest.fixture
def device_env(monkeypatch, tes, tmp_path):
    """The environment a Greengrass component gets (TES URI and token, AWS_REGION) and
    nothing else boto3 could take credentials from; returns a function that points S3 at
    an endpoint (``AWS_ENDPOINT_URL_S3``)."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", tes_url(tes))
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", TES_TOKEN)
    monkeypatch.setenv("AWS_REGION", "us-east-1")

    def point_s3_at(url: str) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)

    return point_s3_at


def start_moto(port: int = 0) -> tuple[ThreadedMotoServer, str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"http://{host}:{bound}"


@pytest.fixture
def moto_s3():
    """moto's S3 over real HTTP with the evidence bucket: ``(endpoint URL, test client)``."""
    server, url = start_moto()
    client = boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    client.create_bucket(Bucket=BUCKET)
    yield url, client
    server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ConnectionCounter:
    """A TCP listener that counts the connections it accepts (and closes them)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()
