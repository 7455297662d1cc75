"""Speech services from settings: where prompts are cached and how Asterisk names them."""

from __future__ import annotations

from pathlib import Path

from ctl.asterisk import config, provision
from ctl.asterisk.secrets import Secrets
from ctl.contacts.service import ContactService
from ctl.errors import CtlError
from ctl.settings import Settings
from ctl.speech.asr import Recognizer
from ctl.speech.postcall import Transcriber
from ctl.speech.tts import Tts
from ctl.store.db import Database
from ctl.telephony.ari import AriClient


def media_dir(settings: Settings, cache_dir: Path) -> str:
    """`cache_dir` as Asterisk sees it: inside its own root the instance directory is
    mounted elsewhere, so a prompt's path must be translated, not just passed on."""
    host = (settings.data_dir / "asterisk").resolve()
    try:
        inst = provision.locate(settings.asterisk)
    except CtlError:
        inst = None
    if inst is None or inst.root is None or not cache_dir.is_relative_to(host):
        return str(cache_dir)
    return config.layout(settings, inst).view(*cache_dir.relative_to(host).parts)


def cache_dir(settings: Settings) -> Path:
    return (settings.speech.cache_dir
            or settings.data_dir / "asterisk" / "sounds" / "tts").resolve()


def tts(settings: Settings) -> Tts:
    where = cache_dir(settings)
    return Tts(where, settings.speech.voices, media_dir(settings, where))


def recognizer(settings: Settings, secrets: Secrets) -> Recognizer:
    ast = settings.asterisk
    ari = AriClient(ast.ari_url or f"http://127.0.0.1:{ast.http_port}", "ctl",
                    secrets.ari_password, f"{ast.app}-speech")
    return Recognizer(ari, settings.speech.vosk_models, settings.speech.end_silence)


def transcriber(settings: Settings, db: Database, contacts: ContactService
                ) -> Transcriber | None:
    sp = settings.speech
    if not sp.transcripts:
        return None
    recordings = settings.recordings_dir
    return Transcriber(db, contacts, recordings, sp.vosk_models, sp.transcript_language)
