"""Secrets generated on first run, stored 0600, never defaulted."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Secrets:
    ari_password: str
    ami_secret: str
    session_key: str
    csrf_key: str  # the agent desktop's CSRF tokens are HMACs of sessions with this key
    webrtc_key: str  # derives agents' browser SIP passwords (ctl/asterisk/webrtc.py)


def load_or_create(data_dir: Path) -> Secrets:
    path = data_dir / "secrets.json"
    fields = Secrets.__dataclass_fields__
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    missing = [name for name in fields if name not in stored]
    if missing:
        for name in missing:
            stored[name] = secrets.token_urlsafe(24)
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({k: stored[k] for k in fields}, f, indent=2)
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return Secrets(**{k: stored[k] for k in fields})


def as_dict(s: Secrets) -> dict[str, str]:
    return asdict(s)
