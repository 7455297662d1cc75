"""The CRM hook: an HTTP GET built from the customer's identities, its JSON shown in the
360 as "CRM". A slow or failing CRM is reported as such, never as a failed 360.

    crm:
      url: "http://crm.example/api/customers?phone={phone}"
      timeout: 2s
      headers: {Authorization: "Bearer ..."}
"""

from __future__ import annotations

import asyncio
import json
import logging
import string
import time
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ctl.durations import Seconds
from ctl.store.models import IDENTITY_KINDS

log = logging.getLogger(__name__)
PLACEHOLDERS = frozenset(IDENTITY_KINDS | {"id", "name"})
_MAX_BYTES = 1024 * 1024


class CrmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # None: no CRM. Placeholders: {id}, {name} and identity kinds ({phone}, {email},
    # {account}, {wechat_openid}...), filled URL-encoded with the customer's first one.
    url: str | None = None
    timeout: Seconds = Field(3.0, gt=0, le=60)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if urlsplit(v).scheme not in ("http", "https"):
            raise ValueError(f"{v!r} is not an http(s) URL")
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
        except ValueError as e:
            raise ValueError(f"{v!r}: {e}") from None
        unknown = names - PLACEHOLDERS
        if unknown:
            raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}; use "
                             + ", ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS)))
        return v


class Crm:
    def __init__(self, settings: CrmSettings) -> None:
        self.settings = settings
        self._http: aiohttp.ClientSession | None = None

    @property
    def configured(self) -> bool:
        return self.settings.url is not None

    async def lookup(self, values: dict[str, str]) -> dict[str, Any]:
        """{"ok": true, "data"} or {"ok": false, "error"}: never raises."""
        template = self.settings.url
        if template is None:
            return {"ok": False, "error": "no CRM configured (crm.url)"}
        needed = [f for _, f, _, _ in string.Formatter().parse(template) if f]
        missing = [f for f in needed if not values.get(f)]
        if missing:
            return {"ok": False, "error": f"this customer has no {missing[0]}"}
        url = template.format(**{f: quote(values[f], safe="") for f in needed})
        host = urlsplit(url).netloc  # logs name the CRM, never the customer in its URL
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.settings.timeout):
                async with self.http.get(url, headers=self.settings.headers) as r:
                    body = await r.content.read(_MAX_BYTES + 1)
                    if r.status != 200:
                        return self._failed(host, f"the CRM answered HTTP {r.status}")
                    if len(body) > _MAX_BYTES:
                        return self._failed(host, "the CRM's answer is over 1 MiB")
                    data = json.loads(body)
        except TimeoutError:
            return self._failed(host, f"the CRM did not answer within "
                                      f"{self.settings.timeout:g} s")
        except aiohttp.ClientError as e:
            return self._failed(host, f"the CRM is unreachable ({type(e).__name__})")
        except ValueError:
            return self._failed(host, "the CRM's answer is not JSON")
        return {"ok": True, "data": data, "ms": round((time.monotonic() - started) * 1000)}

    @staticmethod
    def _failed(host: str, error: str) -> dict[str, Any]:
        log.warning("CRM lookup at %s: %s", host, error)
        return {"ok": False, "error": error}

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

