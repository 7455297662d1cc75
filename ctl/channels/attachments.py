"""Attachments on disk, content-addressed (sha256), with size and type limits.

A file is written under a temporary name and renamed into place, so a crash never
leaves a half file under a name a message points to; the same content is stored once.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import os
import re
from pathlib import Path
from typing import Any

from ctl.channels.contract import Attachment, Rejected
from ctl.errors import NotFound

_SAFE = re.compile(r"[^\w.\- ]+")
_SHA = re.compile(r"^[0-9a-f]{64}$")


class AttachmentStore:
    def __init__(self, root: Path, max_bytes: int, types: list[str]) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.types = [t.lower() for t in types]

    def check(self, att: Attachment) -> None:
        """Raise Rejected naming the problem when `att` may not be stored."""
        if len(att.data) > self.max_bytes:
            raise Rejected(f"attachment {att.name!r} is {len(att.data)} bytes; the limit is "
                           f"{self.max_bytes}", reason="attachment_too_large",
                           params={"name": att.name, "limit": self.max_bytes})
        kind = att.content_type.split(";")[0].strip().lower()
        if not any(fnmatch.fnmatchcase(kind, t) for t in self.types):
            raise Rejected(f"attachment {att.name!r}: type {kind or 'unknown'!r} is not "
                           "accepted", hint="accepted: " + ", ".join(self.types),
                           reason="attachment_type",
                           params={"name": att.name, "type": kind or "?"})

    async def save(self, att: Attachment) -> dict[str, Any]:
        """Store `att` (check() first); its description for the message row."""
        self.check(att)
        sha = hashlib.sha256(att.data).hexdigest()
        await asyncio.to_thread(self._write, sha, att.data)
        return {"sha256": sha, "name": safe_name(att.name), "size": len(att.data),
                "type": att.content_type.split(";")[0].strip().lower()}

    async def accept(self, atts: tuple[Attachment, ...]) -> list[dict[str, Any]]:
        """Store what may be stored; the rest is listed with the reason it was dropped
        (the message itself is never lost for a bad attachment)."""
        out = []
        for att in atts:
            try:
                out.append(await self.save(att))
            except Rejected as e:
                out.append({"name": safe_name(att.name), "size": len(att.data),
                            "type": att.content_type, "dropped": str(e)})
        return out

    def path(self, sha: str) -> Path:
        if not _SHA.match(sha):
            raise NotFound(f"no attachment {sha!r}")
        p = self.root / sha[:2] / sha
        if not p.exists():
            raise NotFound(f"no attachment {sha}")
        return p

    def _write(self, sha: str, data: bytes) -> None:
        final = self.root / sha[:2] / sha
        if final.exists():
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, final)


def safe_name(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/")) or "attachment"
    return _SAFE.sub("_", base)[:200]
