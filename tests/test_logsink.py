from __future__ import annotations

import logging
from typing import Any

from kubemeta.shell.logsink import FieldsFormatter, JournalHandler


def test_journal_gets_priority_and_structured_fields() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    logger = logging.getLogger("kubemeta.test.journal")
    logger.handlers = [JournalHandler(lambda msg, **f: sent.append((msg, f)))]
    logger.propagate = False
    logger.warning("Kubernetes API unavailable: %s; serving cached metadata", "403 Forbidden",
                   extra={"event": "api_unavailable", "api_status": 403})
    msg, fields = sent[0]
    assert msg == "Kubernetes API unavailable: 403 Forbidden; serving cached metadata"
    assert fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "kubemeta"
    assert fields["KUBEMETA_EVENT"] == "api_unavailable"
    assert fields["KUBEMETA_API_STATUS"] == "403"


def test_file_format_carries_the_same_fields() -> None:
    rec = logging.makeLogRecord({"msg": "hello %s", "args": ("x",), "levelno": 30,
                                 "levelname": "WARNING", "event": "start", "api_status": 0})
    line = FieldsFormatter().format(rec)
    assert line.endswith("WARNING hello x api_status=0 event=start")
