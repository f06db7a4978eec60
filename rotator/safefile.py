"""Write the tool's files without following a link another local user planted.

Every file rotator writes (the traceback log, the run lock, exports, reports, metrics,
`.env.local`) goes through this module. A new file is created next to its destination
with `O_CREAT | O_EXCL | O_NOFOLLOW` and renamed over it: `rename(2)` replaces a symlink
at the destination instead of writing through it, so a link at `last-error.log` pointing
at `/etc/shadow` is replaced by a plain file and `/etc/shadow` is untouched. Files that
must be opened in place (the lock) are opened with `O_NOFOLLOW` and refused when they
are not a regular file of ours.

Directories the tool owns (the state directory, `keys/`) are created 0700 and refused
when another user could write to them or owns them: in such a directory any of the
above can be undone by renaming entries.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from rotator.errors import OutputFileError, RotatorError, StateFileError, UnsafePathError

__all__ = [
    "check_private_dir",
    "ensure_private_dir",
    "open_private",
    "replacing",
    "write_output",
    "write_private",
]


def _refuse_unsafe(path: Path, st: os.stat_result, what: str) -> None:
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(
            f"the {what} {path} is not a directory; move it aside and run the command again"
        )
    uid = os.geteuid()
    if st.st_uid != uid:
        raise UnsafePathError(
            f"the {what} {path} is owned by uid {st.st_uid}, not by this user (uid {uid}); "
            f"another user could replace the keys or files in it. Check who created it, then "
            f"`chown -R {uid} {path}` or set ROTATOR_HOME to a directory of your own"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafePathError(
            f"the {what} {path} is writable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"another user could swap the files in it. Run `chmod 700 {path}` and check "
            "that its keys are yours"
        )


def check_private_dir(path: Path, what: str = "state directory") -> None:
    """Refuse `path` unless it is a directory owned by this user that no one else can write."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            # A link of ours or root's (/var/lib/rotator -> /data/rotator) is a choice an
            # administrator made; one another user made is refused like their directory.
            if st.st_uid not in (os.geteuid(), 0):
                raise UnsafePathError(
                    f"the {what} {path} is a symbolic link owned by uid {st.st_uid}; another "
                    "user could point it anywhere. Remove it, or set ROTATOR_HOME to a "
                    "directory of your own"
                )
            st = os.stat(path)
    except FileNotFoundError:
        return
    _refuse_unsafe(path, st, what)


def ensure_private_dir(
    path: Path,
    what: str = "state directory",
    error: type[RotatorError] = StateFileError,
    fix: str = "or set ROTATOR_HOME to a writable directory",
) -> Path:
    """Create `path` (and missing parents) 0700 whatever the umask, then check it.

    A directory that cannot be created raises `error` (exit 6 for the state directory)
    naming it, the reason, and `fix`.
    """
    missing: list[Path] = []
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass  # another process made it first; it is checked below like any other
        except OSError as exc:
            raise error(
                f"cannot create the {what} {directory}: {exc.strerror}; create it "
                f"(`mkdir -m 700 {directory}`) {fix}"
            ) from None
        else:
            # mkdir's mode is filtered by the umask; a umask of 0 must not give 0777.
            os.chmod(directory, 0o700)
    check_private_dir(path, what)
    return path


def open_private(path: Path, flags: int, mode: int = 0o600) -> int:
    """Open `path` in place without following a symlink; refuse anything but our own file."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(
                f"{path} is a symbolic link; rotator does not write through links. Remove "
                f"it (`rm {path}`) after checking who made it"
            ) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise UnsafePathError(
            f"{path} is not a regular file owned by this user; remove it (`rm {path}`) "
            "after checking who made it"
        )
    return fd


def _replace(path: Path, data: bytes, mode: int) -> None:
    directory = path.parent
    temp = directory / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(
        temp,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
        0o600,
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode != 0o600:
            os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk too.
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # Some file systems refuse fsync on a directory; the rename still happened.
    finally:
        os.close(dir_fd)


def write_private(path: Path | str, data: bytes | str, mode: int = 0o600) -> Path:
    """Replace a file in a directory the tool owns (checked first); never follow a link.

    For files inside the state directory. Raises `UnsafePathError` (exit 5) when the
    directory is unsafe and `StateFileError` (exit 6) naming the path when it cannot be
    written (read-only, full disk).
    """
    target = Path(path)
    check_private_dir(target.parent, "directory")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        _replace(target, payload, mode)
    except OSError as exc:
        raise StateFileError(
            f"cannot write {target}: {exc.strerror}; nothing was replaced. Free space or "
            "make the state directory writable by this user, then run again"
        ) from None
    return target


def write_output(path: Path | str, data: bytes | str, mode: int = 0o600) -> Path:
    """Replace a file a person named on the command line (`--out`, an export); never follow a link.

    The directory is the person's choice, so it is not required to be private; the rename
    still replaces a planted link rather than writing through it. Raises `OutputFileError`
    (exit 2) naming the path when it cannot be written.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        _replace(target, payload, mode)
    except OSError as exc:
        raise OutputFileError(
            f"cannot write {target}: {exc.strerror}; choose a writable directory with free "
            "space (nothing was written)"
        ) from None
    return target


@contextlib.contextmanager
def replacing(path: Path | str, mode: int = 0o600) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` (by rename) when the block ends without error.

    For output too large to hold in memory (an audit export). On an error the temporary
    file is removed and `path` is left as it was. A file that cannot be created or
    written raises `OutputFileError` (exit 2) naming `path`.
    """
    target = Path(path)
    temp = target.parent / f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(
            temp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
            0o600,
        )
    except OSError as exc:
        raise OutputFileError(
            f"cannot write {target}: {exc.strerror}; choose a writable directory"
        ) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if mode != 0o600:
            os.chmod(temp, mode)
        os.replace(temp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise OutputFileError(
            f"cannot write {target}: {exc.strerror}; free space or choose another directory "
            "(nothing was written)"
        ) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(target.parent)
