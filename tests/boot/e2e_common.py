"""Values and helpers shared by e2e.py and engines.py (the boot test)."""

from __future__ import annotations

RUNNER_TOKEN = "glrt-e2e'run\"ner$(reboot)`id`\\;&|-0123456789"
PASSWORD_HASH = "$6$pinodesalt$ZU8tXiuiLl3v.QDIcku9Zu6nG5xxmDLRrN6L7M4O8o2LLDmkJTF0ExUBxp3TkOiD6Kh21B4pR8moDI..taezW1"


def parse_record(text: str) -> dict:
    return dict(line.split("=", 1) for line in text.strip().splitlines() if "=" in line)
