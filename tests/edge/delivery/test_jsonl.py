"""The JSON-lines publisher (edge_component/delivery/jsonl.py)."""

from __future__ import annotations

import json

from edge_component.delivery.jsonl import JsonLinesPublisher


def test_json_lines_publisher_appends_topic_and_message(tmp_path):
    p = JsonLinesPublisher(tmp_path / "a.jsonl")
    p.publish("vigil/x/alerts", {"a": 1})
    p.publish("vigil/x/alerts", {"a": 2})
    p.close()
    assert [json.loads(line)["message"]["a"] for line in (tmp_path / "a.jsonl").read_text().splitlines()] == [1, 2]
