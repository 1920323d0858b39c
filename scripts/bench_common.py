"""Shared helpers of the nifuse benchmark harnesses (bench_gzip.py, bench_throughput.py).

Not a benchmark itself. Mounting (always unmounted in a `finally`), bounded
subprocesses, reading files in 1 MiB requests, the daemon's CPU time, checking
volume bytes, medians and the result table.
"""
import contextlib
import os
import statistics
import struct
import subprocess
import sys
import time

DEFAULT_NIFUSE = '/tmp/bench-target/release/nifuse'
CHUNK = 1 << 20
MOUNT_TIMEOUT = 60
CLK_TCK = os.sysconf('SC_CLK_TCK')


class BenchError(Exception):
    """A harness failure (wrong bytes, a mount that does not come up...): exit non-zero."""


def run(cmd, timeout=120, check=True, **kw):
    """subprocess.run with a timeout and captured text output."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f'timed out after {timeout}s: {" ".join(map(str, cmd))}') from e
    if check and p.returncode != 0:
        raise BenchError(f'{" ".join(map(str, cmd))} exited {p.returncode}: {p.stderr.strip()}')
    return p


def is_mounted(mnt):
    mnt = os.path.realpath(mnt)
    with open('/proc/self/mountinfo') as f:
        return any(line.split(' ')[4] == mnt for line in f)


def force_unmount(mnt):
    """Last resort after a failed `nifuse umount`."""
    for cmd in (['fusermount3', '-u', '-z', mnt], ['umount', '-l', mnt]):
        if not is_mounted(mnt):
            return
        with contextlib.suppress(Exception):
            subprocess.run(cmd, capture_output=True, timeout=30)


@contextlib.contextmanager
def mounted(nifuse, src, mnt, *opts, log_file=None):
    """`nifuse mount [opts] SRC MNT` for the duration of the with-block."""
    os.makedirs(mnt, exist_ok=True)
    if is_mounted(mnt):
        force_unmount(mnt)
    cmd = [nifuse, 'mount', *opts]
    if log_file:
        cmd += ['--log-file', log_file]
    try:
        run(cmd + [src, mnt], timeout=MOUNT_TIMEOUT)
    except BenchError:
        force_unmount(mnt)
        raise
    try:
        yield mnt
    finally:
        try:
            run([nifuse, 'umount', mnt], timeout=MOUNT_TIMEOUT)
        except BenchError as e:
            print(f'warning: {e}; forcing the unmount', file=sys.stderr)
        force_unmount(mnt)
        wait_daemon_gone(mnt)


def daemon_pid(mnt):
    """PID of the `nifuse mount ... MNT` daemon serving `mnt` (its cmdline names MNT)."""
    mnt = os.path.realpath(mnt)
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            continue
        if b'mount' in argv and mnt.encode() in argv and b'umount' not in argv \
                and b'nifuse' in os.path.basename(argv[0]):
            found.append(int(pid))
    if len(found) != 1:
        raise BenchError(f'expected one nifuse daemon for {mnt}, found {found}')
    return found[0]


def wait_daemon_gone(mnt, timeout=10):
    """Waits (bounded) for the daemon of `mnt` to exit, so timings do not overlap its shutdown."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            daemon_pid(mnt)
        except BenchError:
            return
        time.sleep(0.02)


def cpu_seconds(pid):
    """utime + stime of process `pid` (all threads), in seconds."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def read_whole(path, buf=None, keep=False):
    """Reads `path` to its end in CHUNK-byte read(2)s. Returns the byte count (or the bytes)."""
    buf = buf if buf is not None else bytearray(CHUNK)
    parts, total = [], 0
    fd = os.open(path, os.O_RDONLY)
    try:
        while True:
            n = os.readv(fd, [buf])
            if n == 0:
                break
            total += n
            if keep:
                parts.append(bytes(buf[:n]))
    finally:
        os.close(fd)
    return b''.join(parts) if keep else total


def pread_range(fd, start, length, buf):
    """Reads bytes start..start+length of `fd` in CHUNK-byte preadv(2)s; returns the count."""
    done = 0
    while done < length:
        view = memoryview(buf)[:min(CHUNK, length - done)]
        n = os.preadv(fd, [view], start + done)
        if n <= 0:
            raise BenchError(f'short read at {start + done}')
        done += n
    return done


def vol_name(k, n_vols):
    return f'vol_{k:0{max(4, len(str(n_vols - 1)))}d}.nii'


def volume_voxels(data, where):
    """The voxel bytes of a NIfTI-1/2 volume file's contents `data` (after vox_offset)."""
    (sizeof_hdr,) = struct.unpack_from('<i', data, 0)
    if sizeof_hdr == 348:
        vox_offset = int(struct.unpack_from('<f', data, 108)[0])
    elif sizeof_hdr == 540:
        (vox_offset,) = struct.unpack_from('<q', data, 168)
    else:
        raise BenchError(f'{where}: not a little-endian NIfTI header (sizeof_hdr {sizeof_hdr})')
    if vox_offset % 16 or vox_offset < sizeof_hdr:
        raise BenchError(f'{where}: bad vox_offset {vox_offset}')
    return data[vox_offset:]


def verify_volumes(mnt_dir, n_vols, expected_voxels):
    """Reads every vol_K.nii under `mnt_dir`; its voxels must equal expected_voxels(K)."""
    for k in range(n_vols):
        path = os.path.join(mnt_dir, vol_name(k, n_vols))
        data = read_whole(path, keep=True)
        if os.stat(path).st_size != len(data):
            raise BenchError(f'{path}: st_size {os.stat(path).st_size} but {len(data)} bytes read')
        if volume_voxels(data, path) != expected_voxels(k):
            raise BenchError(f'{path}: voxel bytes differ from the source volume {k}')


def warm_page_cache(path):
    read_whole(path)


def median(xs):
    return statistics.median(xs) if xs else float('nan')


def fmt_time(s):
    if s != s:
        return 'n/a'
    return f'{s * 1e3:.1f} ms' if s < 10 else f'{s:.2f} s'


def print_table(rows, title):
    """rows: (scenario, nifuse, baseline, ratio, goal, verdict) strings."""
    head = ('scenario', 'nifuse', 'baseline', 'ratio', 'goal', 'result')
    rows = [head] + [tuple(map(str, r)) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    print(f'\n{title}')
    for i, r in enumerate(rows):
        print('  '.join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            print('  '.join('-' * w for w in widths))


def verdict(ratio, goal):
    return 'PASS' if ratio >= goal else 'MISS'
