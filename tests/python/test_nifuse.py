"""The nifuse module against the nifuse command it runs: real mounts, read with nibabel."""
from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sysconfig
from importlib.metadata import version as dist_version
from pathlib import Path

import nibabel as nib
import nifuse
import numpy as np
import pytest
from conftest import daemon_gone, daemon_pid, mount_options, wait_until

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    """The nifuse command itself, as a shell user runs it."""
    return subprocess.run([nifuse.find_binary(), *args], capture_output=True, text=True, timeout=60)


def is_mounted(path: Path) -> bool:
    with open('/proc/self/mountinfo') as f:
        return any(line.split()[4] == str(path) for line in f)


def check_volumes(mnt: Path, volumes: dict[str, np.ndarray]) -> None:
    """A few volumes of each image read through the mount equal the source's `dataobj[..., k]`."""
    for name, data in volumes.items():
        n = data.shape[3]
        for k in (0, n // 2, n - 1):
            vol = nib.load(mnt / f'{name}.d' / f'vol_{k:04d}.nii')
            assert vol.shape == data.shape[:3]
            assert np.array_equal(np.asanyarray(vol.dataobj), data[..., k]), f'{name} volume {k}'
        # The range view of the README's notebook example: volumes 1 to n-1, one 4D image.
        rng = nib.load(mnt / f'{name}.d' / f'vols_0001-{n - 1:04d}.nii')
        assert np.array_equal(np.asanyarray(rng.dataobj), data[..., 1:n]), f'{name} range'


def test_mount_then_unmount(source, mountpoint, volumes):
    m = nifuse.mount(source, mountpoint)
    try:
        assert m.path == mountpoint and m.mounted and is_mounted(mountpoint)
        assert sorted(os.listdir(m.path / 'sub-01')) == ['run.nii.gz', 'run.nii.gz.d']
        listed = os.listdir(m.path / 'bold.nii.d')
        assert len([n for n in listed if n.startswith('vol_')]) == 6
        assert {'bold.nii', 'x', 'y', 'z', 'float32', 'float64'} <= set(listed)
        check_volumes(m.path, volumes)
        assert m.log_file is not None and m.log_file.is_file()
        assert 'mounted' in repr(m)
    finally:
        m.unmount()
    assert not is_mounted(mountpoint) and not m.mounted
    assert os.listdir(mountpoint) == []
    m.unmount()  # a second time: nothing to do
    wait_until(lambda: daemon_gone(mountpoint), 'the daemon to exit after the unmount')


def test_mount_object_is_a_context_manager(source, mountpoint, volumes):
    with nifuse.mount(str(source), str(mountpoint), cache_mode='unchanged') as m:
        check_volumes(m.path, volumes)
    assert not is_mounted(mountpoint)


def test_mounted_yields_a_fresh_mount_point_and_cleans_up(source, volumes):
    with nifuse.mounted(source) as mnt:
        assert isinstance(mnt, Path) and is_mounted(mnt)
        check_volumes(mnt, volumes)
    assert not is_mounted(mnt)
    assert not mnt.exists(), 'the temporary mount point was left'


def test_mounted_unmounts_when_the_block_raises(source):
    with pytest.raises(KeyError, match='inside the block'):
        with nifuse.mounted(source) as mnt:
            assert is_mounted(mnt)
            raise KeyError('inside the block')
    assert not is_mounted(mnt)
    assert not mnt.exists()


def test_mounted_detaches_lazily_when_a_file_is_still_open(source, volumes):
    with pytest.warns(RuntimeWarning, match='busy.*detached it lazily'):
        with nifuse.mounted(source) as mnt:
            f = open(mnt / 'bold.nii.d' / 'vol_0002.nii', 'rb')
    try:
        assert not is_mounted(mnt) and not mnt.exists()
        assert len(f.read()) > 0, 'the open file stays readable after a lazy unmount'
    finally:
        f.close()
    wait_until(lambda: daemon_gone(mnt), 'the daemon to exit once the last file was closed')


def test_options_reach_the_mount(source, mountpoint, tmp_path):
    index_dir = tmp_path / 'idx'
    log_file = tmp_path / 'logs' / 'nifuse.log'
    m = nifuse.mount(
        source, mountpoint,
        cache_mode='unchanged', cache_size='8M', threads=3, index_dir=index_dir,
        log_file=log_file, allow_other=True, max_read=131072, no_read_ahead=True, verbose=1,
    )
    try:
        for image in ('bold.nii', 'sub-01/run.nii.gz'):
            assert os.getxattr(m.path / image, 'user.cache_mode') == b'unchanged', image
        stats = json.loads((m.path / '.nifuse' / 'stats').read_text())
        assert stats['totals']['cache_budget'] == 8 << 20
        opts = mount_options(m.path)
        assert {'allow_other', 'max_read=131072'} <= opts, opts
        assert m.log_file == log_file
        wait_until(lambda: 'mounted' in log_file.read_text(), 'the mount in the log file')
        assert 'read-ahead of' not in log_file.read_text(), 'no_read_ahead=True was ignored'
        pid = daemon_pid(m.path)
        def fuser_threads() -> int:
            return sum(Path(t, 'comm').read_text().startswith('fuser-')
                       for t in Path(f'/proc/{pid}/task').iterdir())
        assert wait_until(lambda: fuser_threads() >= 3, '3 fuser threads') and fuser_threads() == 3
        (m.path / 'sub-01' / 'run.nii.gz.d' / 'vol_0003.nii').read_bytes()
        wait_until(lambda: index_dir.is_dir() and any(index_dir.glob('run.nii.gz-*')),
                   'the gzip index in index_dir')
    finally:
        m.unmount()


def test_default_options(source, mountpoint, tmp_path):
    log_file = tmp_path / 'nifuse.log'
    with nifuse.mount(source, mountpoint, verbose=True, log_file=log_file) as m:
        assert os.getxattr(m.path / 'bold.nii', 'user.cache_mode') == b'fill'
        assert 'allow_other' not in mount_options(m.path)
        if os.geteuid() == 0:  # as root nifuse raises the read-ahead unless told not to
            wait_until(lambda: 'read-ahead of' in log_file.read_text(), 'the read-ahead log line')


def test_option_mapping_is_generic():
    """Names map to long options without a list of them: new CLI options work as they land."""
    cmd = nifuse.mount_command(
        's3://bucket/prefix', '/mnt/vols',
        verify='strict', endpoint_url='http://127.0.0.1:9000', region='eu-west-1',
        no_sign_request=True, metadata_ttl=60, cache_size=None, no_read_ahead=False,
        allow_other=True, allow_root=False, noatime=True, max_read=131072, verbose=2,
    )
    assert cmd[0] == nifuse.find_binary()
    assert cmd[1:] == [
        'mount', '--verify=strict', '--endpoint-url=http://127.0.0.1:9000', '--region=eu-west-1',
        '--no-sign-request', '--metadata-ttl=60', '--verbose', '--verbose',
        '-o', 'allow_other,noatime,max_read=131072', '--', 's3://bucket/prefix', '/mnt/vols',
    ]
    assert nifuse.mount_command('a', 'b', index_dir=Path('/x y'))[2] == '--index-dir=/x y'
    with pytest.raises(ValueError, match='foreground'):
        nifuse.mount_command('a', 'b', foreground=True)
    with pytest.raises(TypeError, match='allow_other'):
        nifuse.mount_command('a', 'b', allow_other='yes')
    with pytest.raises(TypeError, match='max_read'):
        nifuse.mount_command('a', 'b', max_read='64k')


def cli_error_line(*args: str) -> str:
    p = cli(*args)
    assert p.returncode != 0, p
    return next(line for line in p.stderr.splitlines() if line.startswith(('nifuse: ', 'error: ')))


@pytest.mark.parametrize('options, cli_args, expected', [
    ({'cach_mode': 'unchanged'}, ['--cach-mode=unchanged'], "unexpected argument '--cach-mode'"),
    ({'allow_others': True}, ['--allow-others'], "unexpected argument '--allow-others'"),
    ({'cache_mode': 'sometimes'}, ['--cache-mode=sometimes'], "invalid value 'sometimes'"),
    ({'threads': 'many'}, ['--threads=many'], "invalid value 'many'"),
])
def test_a_bad_option_raises_with_the_cli_message(source, mountpoint, options, cli_args, expected):
    with pytest.raises(nifuse.NifuseError) as caught:
        nifuse.mount(source, mountpoint, **options)
    err = caught.value
    assert expected in str(err)
    assert str(err).startswith(cli_error_line('mount', *cli_args, str(source), str(mountpoint)))
    assert err.returncode == 2 and err.command[:2] == [nifuse.find_binary(), 'mount']
    assert not is_mounted(mountpoint)


def test_a_misspelled_option_gets_the_cli_tip(source, mountpoint):
    tip = "(tip: a similar argument exists: '--cache-mode')"
    with pytest.raises(nifuse.NifuseError, match=re.escape(tip)):
        nifuse.mount(source, mountpoint, cache_mod='fill')


def test_missing_source(tmp_path, mountpoint):
    missing = tmp_path / 'no-such-dir'
    with pytest.raises(nifuse.NifuseError) as caught:
        nifuse.mount(missing, mountpoint)
    err = caught.value
    assert isinstance(err, OSError)
    assert str(err) == cli_error_line('mount', str(missing), str(mountpoint))
    assert str(err) == f'nifuse: SOURCE {missing}: No such file or directory (os error 2)'
    assert err.returncode == 1
    with pytest.raises(nifuse.NifuseError, match='no-such-dir'):
        with nifuse.mounted(missing):
            pass


def test_busy_mount_point(source, mountpoint, volumes):
    with nifuse.mount(source, mountpoint):
        with pytest.raises(nifuse.NifuseError, match=r'^nifuse: MOUNTPOINT .* is busy') as caught:
            nifuse.mount(source, mountpoint)
        assert caught.value.returncode == 1
        check_volumes(mountpoint, volumes)  # the first mount still serves


def test_a_mount_left_by_a_killed_daemon_is_cleared(source, mountpoint, volumes):
    nifuse.mount(source, mountpoint)
    os.kill(daemon_pid(mountpoint), signal.SIGKILL)

    def dead() -> bool:
        try:
            os.stat(mountpoint)
        except OSError as e:
            return e.errno == errno.ENOTCONN
        return False
    wait_until(dead, 'the mount point to answer ENOTCONN')
    assert 'dead mount' in cli_error_line('mount', str(source), str(mountpoint))

    with nifuse.mount(source, mountpoint) as m:
        check_volumes(m.path, volumes)


def test_versions_agree():
    import tomllib
    cargo = tomllib.loads((REPO / 'Cargo.toml').read_text())['package']['version']
    assert nifuse.__version__ == dist_version('nifuse') == cargo
    assert cli('--version').stdout.split() == ['nifuse', cargo]


@pytest.mark.skipif('NIFUSE_WHEEL' not in os.environ,
                    reason='no wheel given (scripts/test-python sets NIFUSE_WHEEL)')
def test_the_wheel_is_manylinux_and_of_cargo_version():
    import tomllib
    cargo = tomllib.loads((REPO / 'Cargo.toml').read_text())['package']['version']
    name = os.path.basename(os.environ['NIFUSE_WHEEL'])
    assert re.fullmatch(rf'nifuse-{re.escape(cargo)}-py3-none-manylinux_\d+_\d+_\w+\.whl', name), name


def test_the_binary_is_the_one_beside_this_python(monkeypatch, tmp_path):
    beside = os.path.join(sysconfig.get_path('scripts'), 'nifuse')
    if 'NIFUSE_BIN' in os.environ:  # a development run against a cargo build
        assert nifuse.find_binary() == os.environ['NIFUSE_BIN']
    else:
        assert nifuse.find_binary() == beside
    not_executable = tmp_path / 'nifuse'
    not_executable.write_text('')
    monkeypatch.setenv('NIFUSE_BIN', str(not_executable))
    with pytest.raises(nifuse.NifuseError, match='NIFUSE_BIN=.* is not an executable file'):
        nifuse.mount('a', 'b')
