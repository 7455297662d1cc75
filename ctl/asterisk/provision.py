"""Find an installed Asterisk, or build a Debian sid root that carries one."""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ctl.errors import DependencyMissing, ProvisionError
from ctl.settings import AsteriskSettings

log = logging.getLogger(__name__)

PACKAGES = (
    "asterisk",
    "asterisk-modules",
    "asterisk-core-sounds-en-wav",
    "asterisk-moh-opsound-wav",
)
MARKER = ".ctl-root"


@dataclass(frozen=True)
class Installation:
    """Where Asterisk lives. `root` is None for a host install, else the chroot."""

    binary: str
    root: Path | None
    uid: int | None
    gid: int | None

    @property
    def user(self) -> str | None:
        return "asterisk" if self.uid is not None else None


def locate(cfg: AsteriskSettings) -> Installation | None:
    """The installation to use, without building anything."""
    if cfg.binary != "auto":
        if not Path(cfg.binary).is_file():
            raise DependencyMissing(
                f"asterisk.binary {cfg.binary!r} does not exist",
                hint="set asterisk.binary to 'auto' or to the path of an asterisk executable",
            )
        return Installation(cfg.binary, None, *_host_user())
    found = shutil.which("asterisk")
    if found:
        return Installation(found, None, *_host_user())
    if (cfg.root / MARKER).exists():
        return Installation("/usr/sbin/asterisk", cfg.root, *_root_user(cfg.root))
    return None


def ensure(cfg: AsteriskSettings) -> Installation:
    """`locate`, or build the sid root (about a minute and 570 MB on first run)."""
    found = locate(cfg)
    if found:
        return found
    # Several ctl processes may start at once on a fresh machine (the suite's workers, a
    # cluster's nodes): one builds, the others wait for it and use its root, instead of
    # finding its half-built root (debootstrap's mounts in it) and giving up.
    cfg.root.parent.mkdir(parents=True, exist_ok=True)
    with open(cfg.root.with_name(cfg.root.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = locate(cfg)
        if found:
            return found
        build_root(cfg)
    return Installation("/usr/sbin/asterisk", cfg.root, *_root_user(cfg.root))


def build_root(cfg: AsteriskSettings) -> None:
    if os.geteuid() != 0:
        raise ProvisionError(
            "building the Asterisk root needs root (debootstrap and chroot)",
            hint="run `sudo ctl asterisk up` once, or install asterisk and set asterisk.binary",
        )
    if not shutil.which("debootstrap"):
        raise DependencyMissing(
            "debootstrap is not installed", hint="apt-get install debootstrap"
        )
    partial = cfg.root.with_name(cfg.root.name + ".partial")
    if partial.exists():
        _remove_unmounted(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "debootstrap",
        "--variant=minbase",
        "--include=" + ",".join(PACKAGES),
        cfg.suite,
        str(partial),
        cfg.mirror,
    ]
    log.info("building the Asterisk root (one time, about a minute)",
             extra={"ctx": {"root": str(cfg.root)}})
    logfile = partial.with_suffix(".log")
    with logfile.open("w") as out:
        rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
    if rc != 0:
        tail = "\n    ".join(logfile.read_text(errors="replace").splitlines()[-8:])
        raise ProvisionError(
            f"debootstrap failed (exit {rc}); last lines of {logfile}:\n    {tail}",
            hint=f"check that {cfg.mirror} is reachable and the disk has 1 GB free",
        )
    (partial / "srv/ctl").mkdir(parents=True, exist_ok=True)
    (partial / MARKER).write_text("\n".join(PACKAGES) + "\n")
    if cfg.root.exists():
        _remove_unmounted(cfg.root)
    partial.rename(cfg.root)


def _remove_unmounted(path: Path) -> None:
    # NOTE: deleting a root with /dev bind-mounted in it would delete the host's /dev.
    mounts = Path("/proc/mounts").read_text().split()
    if any(m.startswith(str(path) + "/") for m in mounts):
        raise ProvisionError(f"{path} still has mounts; stop Asterisk first (`ctl asterisk down`)")
    shutil.rmtree(path)


def _host_user() -> tuple[int | None, int | None]:
    if os.geteuid() != 0:
        return None, None
    try:
        pw = pwd.getpwnam("asterisk")
    except KeyError:
        return None, None
    return pw.pw_uid, pw.pw_gid


def _root_user(root: Path) -> tuple[int | None, int | None]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "asterisk":
            return int(fields[2]), int(fields[3])
    return None, None
