"""Log formats, fields and the redaction of secrets."""

from __future__ import annotations

import io
import json
import logging

import pytest
from pydantic import SecretStr

from daemon import logs
from daemon.settings import load_settings

SECRET = "s3cr3t-Value-9"


@pytest.fixture(autouse=True)
def _own_secrets(monkeypatch):
    """Secrets registered here stay here."""
    monkeypatch.setattr(logs, "_secrets", set())


@pytest.fixture
def capture():
    stream = io.StringIO()

    def configure(fmt):
        logs.configure("DEBUG", fmt=fmt, stream=stream)
        return stream

    yield configure
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])


def test_json_lines_carry_fields_and_mask_secrets(capture):
    logs.add_secrets([SECRET])
    stream = capture("json")
    log = logging.getLogger("orderflow.test")
    log.info("sent %s", f"token={SECRET}", extra={"order_id": "801x", "step_id": "erp.order"})
    try:
        raise RuntimeError(f"refused with {SECRET}")
    except RuntimeError:
        log.exception("failed", extra={"task_id": 7})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == f"sent token={logs.MASK}"
    assert (first["order_id"], first["step_id"], first["level"]) == ("801x", "erp.order", "INFO")
    assert set(first) >= {"ts", "level", "logger", "message"}
    assert second["task_id"] == 7
    assert "RuntimeError" in second["exc"]
    assert SECRET not in stream.getvalue()


def test_text_lines_show_fields_and_mask_secrets_in_tracebacks(capture):
    logs.add_secrets([SECRET])
    stream = capture("text")
    log = logging.getLogger("orderflow.test")
    try:
        raise ValueError(SECRET)
    except ValueError:
        log.error("boom", exc_info=True, extra={"order_number": "00000101"})
    out = stream.getvalue()
    assert "boom [order_number=00000101]" in out
    assert "ValueError: **********" in out
    assert SECRET not in out


@pytest.mark.parametrize(
    ("fmt", "environ", "chosen"),
    [
        ("auto", {}, "text"),
        ("auto", {"JOURNAL_STREAM": "8:1234"}, "json"),
        ("auto", {"INVOCATION_ID": "abc"}, "json"),
        ("text", {"INVOCATION_ID": "abc"}, "text"),
        ("json", {}, "json"),
    ],
)
def test_format_choice(fmt, environ, chosen):
    assert logs.choose_format(fmt, environ) == chosen


def test_load_settings_registers_every_secret(monkeypatch):
    monkeypatch.setenv("ORDERFLOW_ERP_TOKEN", "erp-token-abc")
    monkeypatch.setenv("ORDERFLOW_SF_CLIENT_SECRET", "client-secret-xyz")
    monkeypatch.setenv("ORDERFLOW_DATABASE_URL", "postgresql://of:db-pass-123@db/orderflow")
    settings = load_settings()
    assert set(logs.secrets_of(settings)) == {"erp-token-abc", "client-secret-xyz", "db-pass-123"}
    assert logs.redact("a erp-token-abc b db-pass-123") == "a ********** b **********"


def test_a_longer_secret_is_masked_whole():
    logs.add_secrets(["abcd", "abcdefgh"])
    assert logs.redact("xabcdefghx") == "x**********x"


def test_short_values_are_not_treated_as_secrets():
    logs.add_secrets(["ab", None, ""])
    assert logs.redact("ab") == "ab"


def test_secret_str_is_found_on_any_model():
    from pydantic import BaseModel

    class M(BaseModel):
        key: SecretStr
        db_url: str = "https://u:pw-long-1@host"

    assert logs.secrets_of(M(key=SecretStr("k-long-1"))) == ["k-long-1", "pw-long-1"]


def test_under_journald_each_json_line_starts_with_its_priority(tmp_path, monkeypatch):
    path = tmp_path / "journal-stream"
    with path.open("w") as stream:
        stat = path.stat()
        monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
        logs.configure("DEBUG", fmt="auto", stream=stream)
        try:
            log = logging.getLogger("orderflow.test")
            log.error("refused")
            log.warning("slow")
            log.info("cycle")
            log.debug("detail")
        finally:
            logging.basicConfig(force=True, handlers=[logging.NullHandler()])
    lines = path.read_text().splitlines()
    assert [line[:3] for line in lines] == ["<3>", "<4>", "<6>", "<7>"]
    assert [json.loads(line[3:])["message"] for line in lines] == [
        "refused",
        "slow",
        "cycle",
        "detail",
    ]


def test_a_stream_that_is_not_the_journals_gets_no_prefix(tmp_path, monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")  # systemd's, but stderr was redirected
    path = tmp_path / "redirected.log"
    with path.open("w") as stream:
        logs.configure("INFO", fmt="json", stream=stream)
        try:
            logging.getLogger("orderflow.test").error("refused")
        finally:
            logging.basicConfig(force=True, handlers=[logging.NullHandler()])
    assert json.loads(path.read_text())["message"] == "refused"


def test_json_fields_stay_json(capture):
    logs.add_secrets([SECRET])
    stream = capture("json")
    seconds = {"poll": 0.25, "dispatch": 1.5}
    logging.getLogger("orderflow.test").info(
        "cycle", extra={"seconds": seconds, "systems": ["erp", SECRET]}
    )
    entry = json.loads(stream.getvalue())
    assert entry["seconds"] == seconds
    assert entry["systems"] == ["erp", logs.MASK]
