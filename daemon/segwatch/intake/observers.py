"""Choosing how to watch the dump root: inotify where the kernel sees every write, polling where it cannot.

Network and FUSE filesystems change without this kernel seeing the write, so inotify stays silent there; the
mount table says which filesystem holds the root.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from pathlib import Path, PurePosixPath
from typing import Literal

from watchdog.utils import UnsupportedLibcError

from segwatch.errors import ConfigError

log = logging.getLogger(__name__)

ObserverKind = Literal["inotify", "polling"]
# What watch.observer may ask for: auto picks one of the kinds for the root's filesystem.
ObserverChoice = Literal["auto", "inotify", "polling"]


# Filesystems whose files can change without a write passing through this machine's kernel. inotify only
# reports writes it sees, so on these only polling notices what other machines (or a host, or a FUSE daemon)
# wrote. Grouped by why, so the reason given to the user says it.
_UNSEEN_WRITERS: dict[str, str] = {
    # Network filesystems: other clients write through their own kernels.
    **dict.fromkeys(
        ("nfs", "nfs4", "cifs", "smb3", "smbfs", "afs", "coda", "ncpfs", "davfs"), "network filesystem"
    ),
    # Parallel and shared-disk cluster filesystems: every node of a training job writes the same namespace.
    **dict.fromkeys(
        (
            "lustre",
            "gpfs",
            "ceph",
            "glusterfs",
            "beegfs",
            "fhgfs",
            "orangefs",
            "pvfs2",
            "panfs",
            "wekafs",
            "gfs2",
            "ocfs2",
        ),
        "cluster filesystem",
    ),
    # Folders shared into a VM, container VM or WSL: the host writes behind the guest kernel's back.
    **dict.fromkeys(("9p", "virtiofs", "vboxsf", "vmhgfs", "prl_fs", "drvfs"), "folder shared from a host"),
}

_MOUNT_FIELD_ESCAPE = re.compile(rb"\\([0-7]{3})")


def _unseen_writers(fstype: str) -> str | None:
    """What kind of filesystem `fstype` is, if inotify can miss writes to it; None for local ones."""
    # FUSE daemons (sshfs, s3fs, gcsfuse, rclone, ...) serve content the kernel never saw written. fuseblk is
    # usually a local disk, but nothing in the mount table tells a local daemon from a remote one.
    if fstype in ("fuse", "fuseblk") or fstype.startswith("fuse."):
        return "FUSE filesystem"
    return _UNSEEN_WRITERS.get(fstype)


def _unescape_mount_field(field: bytes) -> str:
    # The kernel writes space, tab, newline and backslash in mount points as three-digit octal escapes.
    return os.fsdecode(_MOUNT_FIELD_ESCAPE.sub(lambda match: bytes([int(match.group(1), 8)]), field))


def _mount_holding(path: Path, mount_table: bytes) -> tuple[PurePosixPath, str] | None:
    """The (mount point, filesystem type) that holds absolute `path`: the longest mount point prefix.

    A later line wins a tie, because a mount stacked on the same point hides the ones listed before it.
    """
    best: tuple[PurePosixPath, str] | None = None
    for line in mount_table.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = PurePosixPath(_unescape_mount_field(fields[1]))
        if not path.is_relative_to(mount_point):
            continue
        if best is None or len(mount_point.parts) >= len(best[0].parts):
            best = (mount_point, os.fsdecode(fields[2]))
    return best


def _filesystem_verdict(root: Path, mounts: str | Path) -> tuple[bool, str]:
    """Whether inotify would miss writes under `root`, and a sentence saying why (or why not)."""
    resolved = root.resolve()
    try:
        mount_table = Path(mounts).read_bytes()
    except OSError as error:
        return (
            False,
            f"the mount table {mounts} is unreadable ({error.strerror}); assuming {resolved} is local",
        )
    # A root that does not exist yet is judged by the mount its path would be on, and the line says so.
    subject = str(resolved) if resolved.exists() else f"{resolved} (which does not exist yet) would be"
    found = _mount_holding(resolved, mount_table)
    if found is None:
        return False, f"no mount in {mounts} holds {resolved}; assuming it is local"
    mount_point, fstype = found
    kind = _unseen_writers(fstype)
    if kind is None:
        return False, f"{subject} is on {fstype} (mounted at {mount_point}), a local filesystem"
    return True, (
        f"{subject} is on {fstype} ({kind} mounted at {mount_point}); "
        "inotify only sees writes made through this machine's kernel"
    )


def describe_inotify_error(error: OSError) -> str:
    """What went wrong, and which knob fixes it when it is a limit."""
    if error.errno == errno.ENOSPC:
        return (
            f"{error.strerror} (raise /proc/sys/fs/inotify/max_user_watches, "
            "e.g. sysctl fs.inotify.max_user_watches=524288)"
        )
    if error.errno == errno.EMFILE:
        return f"{error.strerror} (raise /proc/sys/fs/inotify/max_user_instances, or the open-file limit, ulimit -n)"
    return str(error)


def _inotify_unavailable_reason() -> str | None:
    """None if this process can create an inotify instance, otherwise why it cannot."""
    try:
        from watchdog.observers.inotify import InotifyObserver
    except (ImportError, UnsupportedLibcError) as error:
        return f"watchdog has no inotify support here ({error})"
    try:
        probe = InotifyObserver()
    except OSError as error:
        return f"inotify cannot start: {describe_inotify_error(error)}"
    probe.stop()  # never started, so stopping only closes the instance and joins its reader thread
    return None


def choose_observer(
    root: Path, requested: ObserverChoice, mounts: str | Path = "/proc/self/mounts"
) -> tuple[ObserverKind, str]:
    """The observer to watch `root` with, and a reason fit for a log line.

    `auto` polls when the root's filesystem (per the mount table at `mounts`) can change without this kernel
    seeing the write, or when inotify cannot start; it uses inotify otherwise. An explicit `inotify` that cannot
    start is a ConfigError; on a network filesystem it is honoured with a warning.
    """
    if requested == "polling":
        return "polling", "polling was requested"
    if requested not in ("auto", "inotify"):
        raise ConfigError(f"observer must be 'auto', 'inotify' or 'polling', got {requested!r}")
    misses_writes, verdict = _filesystem_verdict(root, mounts)
    if requested == "auto" and misses_writes:
        return "polling", verdict
    unavailable = _inotify_unavailable_reason()
    if requested == "inotify":
        if unavailable is not None:
            raise ConfigError(f"observer 'inotify' was requested, but {unavailable}; use 'auto' or 'polling'")
        if misses_writes:
            log.warning(
                "observer 'inotify' was requested although %s; only rescans will find those files", verdict
            )
            return "inotify", f"inotify was requested, although {verdict}"
        return "inotify", "inotify was requested"
    if unavailable is not None:
        return "polling", unavailable
    return "inotify", verdict
