"""Camera sources as logged and reported (edge_component/config.py redact_source): a URL's
userinfo is shown as ``***``. RFC 3986 section 3.2.1: "Use of the format "user:password"
in the userinfo field is deprecated"; applications "should not render as clear text any
data after the first colon"; we hide the user too."""

import pytest

from edge_component.capture.source import SourceError, open_capture
from edge_component.config import redact_source


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("rtsp://admin:S3cret@10.0.0.5:554/h264", "rtsp://***@10.0.0.5:554/h264"),
        ("rtsp://admin@10.0.0.5/x", "rtsp://***@10.0.0.5/x"),
        ("rtsp://a:p@ss@10.0.0.5/x", "rtsp://***@10.0.0.5/x"),  # an unescaped '@' in the password
        ("rtsp://10.0.0.5/x", "rtsp://10.0.0.5/x"),
        ("rtsp://u:p@h", "rtsp://***@h"),
        ("0", "0"),
        ("clips/a@b.mp4", "clips/a@b.mp4"),  # a file path keeps its '@'
        ("open rtsp://u:p@h/1 and http://v:q@g/2 failed", "open rtsp://***@h/1 and http://***@g/2 failed"),
    ],
)
def test_userinfo_is_hidden(text, shown):
    assert redact_source(text) == shown


def test_a_failing_open_names_the_source_without_its_password():
    with pytest.raises(SourceError) as err:
        open_capture("rtsp://admin:S3cretPw@127.0.0.1:1/stream", timeout_s=2.0)
    assert "rtsp://***@127.0.0.1:1/stream" in str(err.value) and "S3cretPw" not in str(err.value)
