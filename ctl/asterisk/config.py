"""Render asterisk-conf/ and dialplan/ templates into the instance's etc directory."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from ctl.asterisk import webrtc
from ctl.asterisk.provision import Installation
from ctl.asterisk.secrets import Secrets
from ctl.settings import Settings

PROJECT_DIR = Path(__file__).resolve().parents[2]
CHROOT_BASE = "/srv/ctl"  # where the instance directory is bind-mounted inside the root

# Modules that fail without hardware or configuration we do not ship, or that listen on
# ports nobody asked for.
NOLOAD = (
    "chan_iax2.so", "chan_dahdi.so", "chan_mgcp.so", "chan_skinny.so", "chan_unistim.so",
    "chan_alsa.so", "chan_console.so", "chan_ooh323.so", "chan_mobile.so", "chan_motif.so",
    "res_xmpp.so", "res_config_ldap.so", "res_config_mysql.so", "res_config_pgsql.so",
    "res_config_odbc.so", "res_odbc.so", "res_config_sqlite3.so", "cdr_pgsql.so",
    "cel_pgsql.so", "cdr_odbc.so", "cel_odbc.so", "cdr_tds.so", "cel_tds.so",
    "cdr_radius.so", "cel_radius.so", "cdr_sqlite3_custom.so", "cel_sqlite3_custom.so",
    "cdr_adaptive_odbc.so", "res_snmp.so", "res_hep.so", "res_hep_pjsip.so",
    "res_hep_rtcp.so", "res_corosync.so", "res_pjsip_phoneprov_provider.so",
    "res_phoneprov.so", "res_calendar.so", "res_calendar_caldav.so", "res_calendar_ews.so",
    "res_calendar_exchange.so", "res_calendar_icalendar.so", "res_statsd.so",
    "res_smdi.so", "app_voicemail_imap.so", "app_voicemail_odbc.so", "res_adsi.so",
    "app_adsiprog.so", "app_getcpeid.so", "res_fax_spandsp.so", "res_fax.so",
    "app_festival.so", "res_stir_shaken.so", "res_geolocation.so", "cdr_beanstalkd.so",
    "cel_beanstalkd.so", "res_prometheus.so", "pbx_lua.so", "pbx_ael.so", "pbx_dundi.so",
    "res_pjsip_stir_shaken.so", "res_aeap.so", "res_speech_aeap.so", "pbx_realtime.so",
    "res_config_curl.so", "res_ael_share.so", "res_pjsip_geolocation.so",
    "res_odbc_transaction.so", "func_odbc.so", "res_stun_monitor.so", "res_resolver_unbound.so",
    "res_parking.so", "cel_manager.so", "cel_custom.so", "cdr_manager.so", "cdr_custom.so",
    "cdr_csv.so", "app_queue.so", "app_followme.so", "app_confbridge.so", "app_page.so",
    "app_amd.so", "app_alarmreceiver.so", "app_agent_pool.so", "app_minivm.so",
    "app_voicemail.so", "res_clialiases.so", "res_pjsip_config_wizard.so",
)
# Configs whose modules we load with their defaults: an empty file keeps the log clean.
EMPTY_CONFIGS = (
    "udptl.conf", "pjproject.conf", "chan_websocket.conf", "websocket_client.conf",
    "res_http_media_cache.conf", "pjsip_notify.conf", "ccss.conf", "stasis.conf",
    "cdr_manager.conf", "cel.conf", "features.conf", "codecs.conf", "acl.conf",
)


@dataclass(frozen=True)
class AgentEndpoint:
    endpoint: str
    name: str
    extension: str
    sip_ha1: str
    username: str = ""  # names the agent's browser endpoint (webrtc.endpoint)


@dataclass(frozen=True)
class Layout:
    """The instance directory as seen from the host and from Asterisk."""

    host_dir: Path
    view_dir: str

    def host(self, *parts: str) -> Path:
        return self.host_dir.joinpath(*parts)

    def view(self, *parts: str) -> str:
        return "/".join([self.view_dir, *parts])

    @property
    def conf(self) -> str:
        return self.view("etc", "asterisk.conf")


def layout(settings: Settings, inst: Installation) -> Layout:
    host_dir = (settings.data_dir / "asterisk").resolve()
    return Layout(host_dir, CHROOT_BASE if inst.root else str(host_dir))


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([PROJECT_DIR / "asterisk-conf", PROJECT_DIR / "dialplan"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_all(
    settings: Settings,
    inst: Installation,
    secrets: Secrets,
    agents: Sequence[AgentEndpoint] = (),
) -> Layout:
    lay = layout(settings, inst)
    for sub in ("etc", "lib", "lib/keys", "spool", "spool/recording", "run", "log", "cache"):
        d = lay.host(sub)
        d.mkdir(parents=True, exist_ok=True)
        if sub == "spool/recording":
            d.chmod(0o750)  # calls' recordings: Asterisk and root only
        if sub != "etc" and inst.uid is not None:
            os.chown(d, inst.uid, inst.gid or -1)
    webrtc.ensure_certificate(lay.host("lib", "keys"), inst.gid)
    context: dict[str, Any] = {
        "base": lay.view_dir,
        "asterisk": settings.asterisk,
        "secrets": secrets,
        "trunks": settings.trunks,
        "noload": NOLOAD,
        **_agents_context(lay, settings, secrets, agents),
        "anonymous": _anonymous(settings),
        "tone_zone": "cn" if settings.default_region == "CN" else "us",
    }
    env = _env()
    for name in env.list_templates(extensions=["j2"]):
        text = env.get_template(name).render(context)
        _write(lay.host("etc", name.removesuffix(".j2")), text, inst)
    for name in EMPTY_CONFIGS:
        _write(lay.host("etc", name), "", inst)
    return lay


def _agents_context(lay: Layout, settings: Settings, secrets: Secrets,
                    agents: Sequence[AgentEndpoint]) -> dict[str, Any]:
    """What the agents' endpoints and the dialplan are rendered from: each agent's desk
    phone and browser phone (endpoint name, HA1)."""
    return {
        "agents": list(agents),
        "web": {a.endpoint: (webrtc.endpoint(a.username),
                             webrtc.ha1(secrets.webrtc_key, a.username, a.sip_ha1))
                for a in agents if a.username},
        "dtls_cert": lay.view("lib", "keys", webrtc.CERT),
        "dtls_key": lay.view("lib", "keys", webrtc.KEY),
        "demo_prompt": settings.demo_prompt,
        "queues": settings.routing.queues,
        "numbers": settings.ivr.numbers,
    }


def _anonymous(settings: Settings) -> bool:
    a = settings.asterisk
    return a.allow_anonymous if a.allow_anonymous is not None else a.sip_host.startswith("127.")


def render_agents(lay: Layout, inst: Installation, settings: Settings, secrets: Secrets,
                  agents: Sequence[AgentEndpoint]) -> None:
    """Only the files that depend on agents; the caller reloads PJSIP and the dialplan."""
    env = _env()
    context = {"asterisk": settings.asterisk, "trunks": settings.trunks,
               **_agents_context(lay, settings, secrets, agents)}
    for name in ("pjsip_agents.conf.j2", "extensions.conf.j2"):
        text = env.get_template(name).render(context)
        _write(lay.host("etc", name.removesuffix(".j2")), text, inst)


def _write(path: Path, text: str, inst: Installation) -> None:
    # Secrets live in these files: readable by Asterisk's group only.
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    if inst.gid is not None:
        os.chown(tmp, 0, inst.gid)
    os.replace(tmp, path)
