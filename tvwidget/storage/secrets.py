"""Secrets at rest and in logs: the TeamViewer token, encrypted with MultiFernet (newest key first).

Keys come from ``TVWIDGET_ENCRYPTION_KEYS`` (never from the database), so a
database dump alone opens nothing; ``rotate`` moves a ciphertext to the
newest key and keeps its timestamp.
"""
import logging
import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tvwidget.config import setting


class SecretUnreadable(Exception):
    """No configured key opens the stored secret (tampered, or its key was dropped)."""


def _keys() -> list[Fernet]:
    return [Fernet(k.strip()) for k in setting("ENCRYPTION_KEYS").split(",") if k.strip()]


def _fernet() -> MultiFernet:
    return MultiFernet(_keys())


def encrypt(plaintext: str) -> str:
    """Return ``plaintext`` encrypted with the newest key."""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """Return the plaintext, or raise SecretUnreadable."""
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable() from exc


def rotate(ciphertext: str) -> str:
    """Return ``ciphertext`` re-encrypted with the newest key (same timestamp)."""
    try:
        return _fernet().rotate(ciphertext.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable() from exc


def is_current(ciphertext: str) -> bool:
    """Return whether the newest key alone opens ``ciphertext`` (rotating it would change nothing)."""
    try:
        _keys()[0].decrypt(ciphertext.encode())
    except (InvalidToken, ValueError):
        return False
    return True


# --- keeping tokens out of logs ------------------------------------------------------------------

REDACTED = "[redacted]"
_SECRET_PATTERNS = (
    # An Authorization header in any rendering: "Authorization: Bearer x", {'Authorization': 'Bearer x'}.
    re.compile(r"(?i)(\bauthorization['\"]?\s*[:=]\s*['\"]?)[^'\"\r\n]+"),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+"),
    # Form fields and query strings: script_token=…, ?token=… (a launch token in a request line).
    re.compile(r"(?i)(\b\w*token=)[^&\s'\"]+"),
    re.compile(r"(?i)(['\"]\w*token['\"]\s*:\s*['\"])[^'\"]+"),
)
_HINTS = ("token", "bearer", "authorization")


def redact(text: str) -> str:
    """Return ``text`` with bearer tokens, Authorization headers and token fields replaced by [redacted]."""
    lowered = text.lower()
    if not any(hint in lowered for hint in _HINTS):
        return text
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return text


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is for logging to report when it is emitted
        return
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[0] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        cleaned = redact(text)
        if cleaned != text:
            # Formatters reuse exc_text instead of formatting the traceback again.
            record.exc_text = cleaned


def redact_logs() -> None:
    """Scrub every log record of this process as it is made (installed once, whatever logs it).

    A record factory rather than a handler filter: handlers come and go with
    the deployment (gunicorn, a host app, pytest), and filters on a logger do
    not see records its children propagate.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "tvwidget_redacts", False):
        return

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        _scrub(record)
        return record

    factory.tvwidget_redacts = True
    logging.setLogRecordFactory(factory)
