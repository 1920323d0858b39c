"""Mount a directory of NIfTI images as 3D volume files, from Python.

``nifuse`` shows every 4D (or 5D+) NIfTI image ``NAME`` of a directory as a
directory ``NAME.d/`` of 3D volume files ``vol_0000.nii``, ... that any program
can open; see the README. This module starts and stops such mounts by running
the ``nifuse`` command that the same wheel installs::

    import nibabel as nib
    import nifuse

    with nifuse.mounted('data/', cache_mode='unchanged') as mnt:
        vol = nib.load(mnt / 'bold.nii.gz.d' / 'vol_0010.nii').get_fdata()

    m = nifuse.mount('data/', '/mnt/vols', cache_size='4G', threads=2)
    ...
    m.unmount()

Options are the ``nifuse mount`` options with underscores: ``cache_mode='fill'``
is ``--cache-mode=fill``, ``no_read_ahead=True`` is ``--no-read-ahead``, and a
``False`` or ``None`` value leaves the option out. The mount words
``allow_other``, ``allow_root``, ``noexec``, ``noatime`` (``True``) and
``max_read`` (an int) go into ``-o``. Every other name is passed to ``nifuse``
as a long option, so a misspelled one fails with nifuse's own message.

Failures raise :class:`NifuseError` (a subclass of :class:`OSError`) whose
text is the one-line message ``nifuse`` printed, such as
``nifuse: SOURCE data/: No such file or directory (os error 2)``.

Only the standard library is used. The ``nifuse`` command is looked up as
``$NIFUSE_BIN``, then beside this Python (the scripts directory of its
environment, where pip installs it), then on ``PATH``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import subprocess
import sysconfig
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Union

__all__ = [
    'Mount',
    'NifuseError',
    'find_binary',
    'mount',
    'mount_command',
    'mounted',
    '__version__',
]

StrPath = Union[str, 'os.PathLike[str]']
#: What an option may be given as: a flag (bool), a number, a string or a path.
OptionValue = Union[bool, int, float, str, 'os.PathLike[str]', None]

#: ``-o`` words that are flags of the mount itself rather than nifuse options.
KERNEL_FLAGS = frozenset({'allow_other', 'allow_root', 'noexec', 'noatime'})
#: ``-o`` words that take a number.
KERNEL_VALUES = frozenset({'max_read'})

#: The ``nifuse`` command to run, overriding the lookup (for development).
BIN_ENV = 'NIFUSE_BIN'


def _package_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover (Python < 3.8)
        return '0+unknown'
    try:
        return version('nifuse')
    except PackageNotFoundError:
        return '0+unknown'


#: The installed distribution's version, which is Cargo.toml's and ``nifuse --version``'s.
__version__: str = _package_version()


class NifuseError(OSError):
    """A ``nifuse`` command failed; ``str(err)`` is its one-line message.

    Attributes:
        message: the line nifuse printed (``nifuse: <reason>``; for a command
            line nifuse refuses, such as a misspelled option, its ``error: ...``
            line with the tip that follows it).
        command: the command that was run, or ``None`` if none could be.
        returncode: its exit status, or ``None``.
        stderr: everything it printed on stderr.
    """

    def __init__(
        self,
        message: str,
        command: Sequence[str] | None = None,
        returncode: int | None = None,
        stderr: str = '',
    ) -> None:
        super().__init__(message)
        self.message = message
        self.command = list(command) if command is not None else None
        self.returncode = returncode
        self.stderr = stderr

    def __str__(self) -> str:
        return self.message


def find_binary() -> str:
    """The ``nifuse`` command this module runs.

    ``$NIFUSE_BIN`` if set; else the ``nifuse`` installed beside this Python
    (``sysconfig.get_path('scripts')``, then the user scheme's scripts
    directory, where ``pip install --user`` puts it); else ``nifuse`` on
    ``PATH``. Raises :class:`NifuseError` if there is none.
    """
    override = os.environ.get(BIN_ENV)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise NifuseError(f'nifuse: {BIN_ENV}={override} is not an executable file')
        return override
    dirs = [sysconfig.get_path('scripts')]
    with contextlib.suppress(KeyError):
        dirs.append(sysconfig.get_path('scripts', f'{os.name}_user'))
    for d in dirs:
        candidate = os.path.join(d, 'nifuse')
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which('nifuse')
    if found:
        return found
    raise NifuseError(
        'nifuse: the nifuse command was not found (looked in '
        f'${BIN_ENV}, {", ".join(dirs)} and PATH); install it with `pip install nifuse`'
    )


def _option_args(options: dict[str, OptionValue]) -> list[str]:
    """``nifuse mount`` arguments for keyword options (see the module doc)."""
    args: list[str] = []
    words: list[str] = []
    for name, value in options.items():
        if name == 'foreground':
            raise ValueError(
                'foreground is not supported: nifuse.mount returns once the mount is live '
                'and the daemon serves it in the background'
            )
        if name in KERNEL_FLAGS:
            if value not in (True, False, None):
                raise TypeError(f'{name} takes True or False, not {value!r}')
            if value:
                words.append(name)
            continue
        if name in KERNEL_VALUES:
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f'{name} takes an int, not {value!r}')
            words.append(f'{name}={value}')
            continue
        flag = '--' + name.replace('_', '-')
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        elif name == 'verbose' and isinstance(value, int):
            args += [flag] * value
        elif isinstance(value, (str, int, float, os.PathLike)):
            args.append(f'{flag}={os.fspath(value) if isinstance(value, os.PathLike) else value}')
        else:
            raise TypeError(f'{name}: a str, number, path or bool, not {type(value).__name__}')
    if words:
        args += ['-o', ','.join(words)]
    return args


def mount_command(source: StrPath, mountpoint: StrPath, **options: OptionValue) -> list[str]:
    """The ``nifuse mount`` command line that :func:`mount` runs for these arguments.

    >>> mount_command('data', '/mnt/vols', cache_mode='unchanged', allow_other=True)[1:]
    ['mount', '--cache-mode=unchanged', '-o', 'allow_other', '--', 'data', '/mnt/vols']
    """
    return [find_binary(), 'mount', *_option_args(options), '--', os.fspath(source), os.fspath(mountpoint)]


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(command), stdin=subprocess.DEVNULL, capture_output=True, text=True, errors='replace'
        )
    except OSError as e:
        raise NifuseError(f'nifuse: cannot run {command[0]}: {e}', command) from e


def _failure(result: subprocess.CompletedProcess[str]) -> NifuseError:
    """The error of a failed nifuse command, with the line it printed."""
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    mine = [line for line in lines if line.startswith('nifuse: ')]
    usage = [i for i, line in enumerate(lines) if line.startswith('error: ')]
    if mine:
        message = mine[-1]
    elif usage:
        # clap's report of a command line it refuses: the error, then tips.
        first = usage[0]
        tips = [line for line in lines[first + 1:] if line.startswith('tip: ')]
        message = lines[first] + ''.join(f' ({tip})' for tip in tips)
    elif lines:
        message = lines[-1]
    else:
        message = f'nifuse: {result.args[1]} exited with status {result.returncode}'
    return NifuseError(message, result.args, result.returncode, result.stderr)


def _check(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    result = _run(command)
    if result.returncode != 0:
        raise _failure(result)
    return result


def _unescape(field: str) -> str:
    """A path as /proc/self/mountinfo writes it (space, tab, newline, backslash as octal)."""
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), field)


def _fuse_mounted(path: str) -> bool:
    """Whether a FUSE file system is mounted at `path`.

    Root mounts show in /proc/self/mountinfo as type ``fuse``, others
    (through fusermount3) as ``fuse.nifuse``.
    """
    try:
        with open('/proc/self/mountinfo', encoding='utf-8', errors='surrogateescape') as f:
            lines = f.readlines()
    except OSError:
        return False
    top = None
    for line in lines:
        fields = line.split()
        if len(fields) > 4 and _unescape(fields[4]) == path and ' - ' in line:
            top = line.split(' - ', 1)[1].split()[0]  # the last one mounted there is on top
    return top is not None and (top == 'fuse' or top.startswith('fuse.'))


def _clear_dead_mount(binary: str, mountpoint: str) -> None:
    """Unmounts a FUSE mount at `mountpoint` whose daemon is gone (it answers ENOTCONN).

    Such a mount serves nothing, whoever made it. A live mount is left alone
    (``nifuse mount`` then says the mount point is busy).
    """
    try:
        os.stat(mountpoint)
        return
    except OSError as e:
        if e.errno != errno.ENOTCONN:
            return
    if _fuse_mounted(os.path.realpath(mountpoint)):
        _check([binary, 'umount', mountpoint])


def _lazy_unmount(path: str) -> None:
    """Detaches the mount at `path` even while files there are open (``umount -l``)."""
    if os.geteuid() == 0:
        _check(['umount', '-l', path])
        return
    for tool in ('fusermount3', 'fusermount'):
        exe = shutil.which(tool)
        if exe:
            _check([exe, '-u', '-z', path])
            return
    raise NifuseError(f'nifuse: cannot detach {path}: fusermount3 is not installed (package fuse3)')


class Mount:
    """A live ``nifuse`` mount, as :func:`mount` returns it.

    The mount belongs to a background daemon and outlives this object unless
    :meth:`unmount` is called (or the object is used as a context manager).

    Attributes:
        path: the mount point (absolute).
        source: the SOURCE argument as given.
        log_file: the daemon's log file, as nifuse reported it, or None.
    """

    def __init__(self, path: Path, source: str, binary: str, log_file: Path | None = None) -> None:
        self.path = path
        self.source = source
        self.log_file = log_file
        self._binary = binary
        self._done = False

    def __repr__(self) -> str:
        state = 'mounted' if self.mounted else 'unmounted'
        return f'<nifuse.Mount {self.source!r} at {str(self.path)!r} ({state})>'

    @property
    def mounted(self) -> bool:
        """Whether a FUSE file system (this one, unless it was replaced) is mounted at :attr:`path`."""
        return _fuse_mounted(str(self.path))

    def unmount(self, lazy: bool = False) -> None:
        """Unmounts (``nifuse umount``); a second call does nothing.

        Raises :class:`NifuseError` with nifuse's message if the unmount fails,
        for example when a process still has a file open on the mount. With
        ``lazy=True`` the mount is detached at once even then (``umount -l``):
        the files already open stay readable and the daemon exits when the
        last one is closed.
        """
        if self._done:
            return
        if lazy:
            _lazy_unmount(str(self.path))
        else:
            try:
                _check([self._binary, 'umount', str(self.path)])
            except NifuseError:
                if self.mounted:
                    raise
        self._done = True

    def _close(self) -> None:
        """Unmounts at the end of a ``with`` block: lazily, with a warning, if files are open."""
        try:
            self.unmount()
        except NifuseError as e:
            self.unmount(lazy=True)
            warnings.warn(f'{e}; detached it lazily instead', RuntimeWarning, stacklevel=3)

    def __enter__(self) -> Mount:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Unmounts as :func:`mounted` does at the end of its block."""
        self._close()


_LOG_LINE = re.compile(r'\(log: (.+)\)$')


def mount(source: StrPath, mountpoint: StrPath, **options: OptionValue) -> Mount:
    """Mounts `source` at `mountpoint` with ``nifuse mount``; returns once the mount is live.

    `options` are ``nifuse mount``'s with underscores (see the module doc),
    e.g. ``cache_mode='unchanged'``, ``cache_size='4G'``, ``threads=2``,
    ``index_dir='/scratch/idx'``, ``allow_other=True``.

    A mount left at `mountpoint` by a daemon that died (the mount point
    answers ENOTCONN, as after a crash or SIGKILL) is cleared first, as
    ``nifuse umount`` does; a live one makes the mount point busy.

    Raises :class:`NifuseError` with nifuse's one-line message on failure
    (missing source, busy mount point, a misspelled or invalid option, no
    FUSE), and :class:`ValueError` or :class:`TypeError` for an option this
    module cannot pass on (``foreground``, ``allow_other='yes'``).
    """
    command = mount_command(source, mountpoint, **options)
    mnt = os.fspath(mountpoint)
    _clear_dead_mount(command[0], mnt)
    result = _check(command)
    lines = result.stderr.strip().splitlines()
    log = _LOG_LINE.search(lines[-1]) if lines else None
    return Mount(
        Path(os.path.realpath(mnt)),
        os.fspath(source),
        command[0],
        Path(log.group(1)) if log else None,
    )


@contextlib.contextmanager
def mounted(source: StrPath, **options: OptionValue) -> Iterator[Path]:
    """Mounts `source` on a new temporary directory for the ``with`` block; yields its path.

    The mount is unmounted and the directory removed when the block ends,
    also when it raises. If files on the mount are still open then, the
    mount is detached lazily (see :meth:`Mount.unmount`) with a
    :class:`RuntimeWarning`. `options` are those of :func:`mount`.

    >>> with mounted('data', cache_mode='unchanged') as mnt:  # doctest: +SKIP
    ...     sorted(p.name for p in mnt.iterdir())
    ['bold.nii.gz', 'bold.nii.gz.d']
    """
    tmp = tempfile.mkdtemp(prefix='nifuse-')
    try:
        m = mount(source, tmp, **options)
    except BaseException:
        os.rmdir(tmp)
        raise
    try:
        yield m.path
    finally:
        m._close()
        with contextlib.suppress(OSError):
            os.rmdir(tmp)
