"""Fixtures of the nifuse module's tests: real mounts of small generated images.

They need root (or fusermount3) and /dev/fuse, as the cargo mount tests do,
and fail rather than skip without them. Every test must leave no mount
behind: one that does fails, and its mounts are detached. All mounts are
made under pytest's base temporary directory (nifuse.mounted's too, through
tempfile.tempdir), and only mounts there are looked at: other programs may be
mounting on this machine at the same time.
"""
from __future__ import annotations

import faulthandler
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, TypeVar

import nibabel as nib
import nifuse
import numpy as np
import pytest

#: Seconds after which a hung test dumps every thread's stack and ends the run.
TEST_TIMEOUT = 120

T = TypeVar('T')


def wait_until(condition: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    """Polls `condition` until it returns something true, or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(0.01)


def fuse_mounts(under: Path) -> set[str]:
    """Mount points of the FUSE file systems mounted now under the directory `under`."""
    points = set()
    with open('/proc/self/mountinfo') as f:
        for line in f:
            fstype = line.split(' - ', 1)[1].split()[0]
            point = line.split()[4]
            if (fstype == 'fuse' or fstype.startswith('fuse.')) and point.startswith(f'{under}/'):
                points.add(point)
    return points


def mount_options(mountpoint: Path) -> set[str]:
    """The mount's options as the kernel shows them (per-mount and per-superblock)."""
    with open('/proc/self/mountinfo') as f:
        for line in f:
            if line.split()[4] == str(mountpoint):
                per_mount = line.split()[5]
                per_sb = line.split(' - ', 1)[1].split()[2]
                return set(per_mount.split(',')) | set(per_sb.split(','))
    raise AssertionError(f'{mountpoint} is not mounted')


def daemon_pid(mountpoint: Path) -> int:
    """PID of the live nifuse daemon serving `mountpoint` (its command line ends with it)."""
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            argv = Path(f'/proc/{pid}/cmdline').read_bytes().split(b'\0')[:-1]
        except OSError:
            continue
        if len(argv) > 2 and os.path.basename(argv[0]) == b'nifuse' and argv[1] == b'mount' \
                and argv[-1] == os.fsencode(mountpoint):
            found.append(int(pid))
    assert len(found) == 1, f'expected one nifuse daemon for {mountpoint}, found {found}'
    return found[0]


def daemon_gone(mountpoint: Path) -> bool:
    try:
        daemon_pid(mountpoint)
    except AssertionError:
        return True
    return False


@pytest.fixture(scope='session', autouse=True)
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """pytest's base temporary directory, where every mount of the tests is made."""
    assert os.path.exists('/dev/fuse'), 'these tests mount: /dev/fuse is missing'
    nifuse.find_binary()  # fails with where it looked
    root = Path(os.path.realpath(tmp_path_factory.getbasetemp()))
    (root / 'tmp').mkdir(exist_ok=True)
    saved, tempfile.tempdir = tempfile.tempdir, str(root / 'tmp')
    yield root
    tempfile.tempdir = saved


@pytest.fixture(autouse=True)
def no_mount_left(base: Path) -> Iterator[None]:
    """Fails a test that leaves a FUSE mount behind (and detaches it); bounds its time."""
    before = fuse_mounts(base)
    faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
    left = sorted(fuse_mounts(base) - before)
    for point in left:
        subprocess.run(['umount', '-l', point], capture_output=True, timeout=30)
    assert not left, f'the test left mounts: {left}'


def image(shape: tuple, seed: int) -> nib.Nifti1Image:
    """A 4D int16 image of random voxels."""
    data = np.random.default_rng(seed).integers(-2000, 2000, size=shape, dtype=np.int16)
    return nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0]))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A SOURCE directory with `bold.nii` (6 volumes) and `sub-01/run.nii.gz` (5 volumes)."""
    src = tmp_path / 'src'
    (src / 'sub-01').mkdir(parents=True)
    nib.save(image((8, 7, 4, 6), seed=1), src / 'bold.nii')
    nib.save(image((6, 6, 5, 5), seed=2), src / 'sub-01' / 'run.nii.gz')
    return src


@pytest.fixture
def volumes(source: Path) -> dict[str, np.ndarray]:
    """The source images' data, by path relative to SOURCE."""
    return {name: np.asanyarray(nib.load(source / name).dataobj)
            for name in ('bold.nii', 'sub-01/run.nii.gz')}


@pytest.fixture
def mountpoint(tmp_path: Path) -> Path:
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    return mnt
