"""JSON log lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from mesh.context import call_scope
from mesh.logging import configure_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    configure_logging("INFO", service="cart", stream=out)
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_lines_are_json_with_extras_and_request_id(stream: io.StringIO) -> None:
    log = logging.getLogger("svc_cart.service")
    with call_scope(request_id="req-7"):
        log.info("item added", extra={"item_id": "i-1", "qty": 2})
    log.debug("not shown")
    [line] = lines(stream)
    assert line["msg"] == "item added" and line["level"] == "INFO"
    assert line["logger"] == "svc_cart.service" and line["service"] == "cart"
    assert (line["request_id"], line["item_id"], line["qty"]) == ("req-7", "i-1", 2)
    assert str(line["ts"]).endswith("+00:00")


def test_exceptions_are_one_line_with_traceback(stream: io.StringIO) -> None:
    try:
        raise ValueError("bad thing")
    except ValueError:
        logging.getLogger("x").exception("failed")
    [line] = lines(stream)
    assert line["exc_type"] == "ValueError"
    assert "bad thing" in str(line["exc"]) and "Traceback" in str(line["exc"])


def test_configuring_twice_does_not_duplicate_lines(stream: io.StringIO) -> None:
    configure_logging("INFO", service="cart", stream=stream)
    logging.getLogger("x").warning("once")
    assert len(lines(stream)) == 1
