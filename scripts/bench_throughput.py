#!/usr/bin/env python3
"""Benchmark: nifuse read throughput on an uncompressed 4D NIfTI, directory listing, daemon CPU.

  /opt/nifuse-venv/bin/python scripts/bench_throughput.py [--nifuse BIN] [--rounds 7] [--workdir DIR]
                                                          [-o MOUNT_OPTION ...]

BIN defaults to /tmp/bench-target/release/nifuse (build it with
`CARGO_TARGET_DIR=/tmp/bench-target cargo build --release`). Generates once, cached in
WORKDIR (default /tmp/nifuse-bench-throughput): src/bold.nii, 96x96x64x120 int16 (random
voxels, ~141 MB), src/x.nii, 4x4x4x1200 int16, and plain1200/, a plain directory of 1,200
empty files (reference for `ls -l`). The source is read once first, so it is in the page
cache. Every nifuse volume (both images) is checked once per run against the source bytes,
outside timing.

Measured in one run, rounds interleaved, medians reported; each ratio is the median over rounds
of (nifuse throughput / direct throughput measured just before it, in the same round):
  direct        os.preadv of each volume's byte range from the source, 1 MiB reads (the limit)
  first read    every bold.nii.d/vol_K.nii read whole in 1 MiB reads, fresh mount each round,
                --cache-mode unchanged and fill                           goal >= 0.4x direct
  re-read       the same files again on the same mount (second pass)      goal >= 0.7x direct
  4 KiB floor   the same 120 volume files copied once to tmpfs (/dev/shm), read the same way
                (open, read, close): what any re-read served from a page cache of 4 KiB pages
                costs. FUSE's page cache uses 4 KiB pages on this kernel, so a re-read through
                FUSE cannot beat it.
  nibabel       np.asarray(img.dataobj[..., k]) for every k, one image object, on the source
  ls -l         `ls -l MNT/x.nii.d > /dev/null` (1,200 volumes and 6 views) as a subprocess, on
                a fresh mount (cold) and again on the same mount (warm), against `ls -l` of a
                plain directory of 1,200 files       goal warm <= 1.5x, fresh <= 4x the plain dir;
                and the xattr calls `ls -l` makes (strace): goal a handful per listing
  round trip    in-process lgetxattr(user.nifti.shape) of every one of the 1,200 volumes: the
                cost of one FUSE request
  daemon CPU    utime+stime of the daemon (/proc/PID/stat) per GB served, per kind of pass
Exits 0 on MISS, non-zero on errors (wrong bytes, mount failures, timeouts).
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (CHUNK, DEFAULT_NIFUSE, BenchError, cpu_seconds, daemon_pid, fmt_time,
                          median, mounted, pread_range, print_table, read_whole, verdict,
                          verify_volumes, vol_name)

BIG = (96, 96, 64, 120)
SMALL = (4, 4, 4, 1200)
LS_TIMEOUT = 60
SHM = '/dev/shm'


def make_sources(src, plain):
    """Writes bold.nii and x.nii with nibabel (random int16) and the plain 1,200-file directory."""
    import numpy as np
    import nibabel as nib
    os.makedirs(src, exist_ok=True)
    rng = np.random.default_rng(7)
    for name, shape in (('bold.nii', BIG), ('x.nii', SMALL)):
        path = os.path.join(src, name)
        if os.path.exists(path) and nib.load(path).shape == shape:
            continue
        print(f'generating {path} ...', flush=True)
        data = rng.integers(-32768, 32767, size=shape, dtype=np.int16)
        nib.save(nib.Nifti1Image(data, np.eye(4)), path + '.tmp.nii')
        os.rename(path + '.tmp.nii', path)
    os.makedirs(plain, exist_ok=True)
    for i in range(1200):
        p = os.path.join(plain, f'vol_{i:04d}.nii')
        if not os.path.exists(p):
            open(p, 'wb').close()


def layout(path, shape):
    """(vox_offset, bytes per volume) of a source image written by nibabel."""
    import nibabel as nib
    img = nib.load(path)
    if img.shape != shape or img.get_data_dtype().itemsize != 2:
        raise BenchError(f'{path}: unexpected shape/dtype {img.shape} {img.get_data_dtype()}; delete it')
    return int(img.dataobj.offset), shape[0] * shape[1] * shape[2] * 2


class Bench:
    def __init__(self, args):
        self.nifuse = os.path.abspath(args.nifuse)
        self.work = os.path.abspath(args.workdir)
        self.src = os.path.join(self.work, 'src')
        self.plain = os.path.join(self.work, 'plain1200')
        self.mnt = os.path.join(self.work, 'mnt')
        self.idx = os.path.join(self.work, 'idx')
        self.log = os.path.join(self.work, 'nifuse.log')
        self.bold = os.path.join(self.src, 'bold.nii')
        self.n = BIG[3]
        self.buf = bytearray(CHUNK)
        self.mount_opts = [w for o in args.o for w in ('-o', o)]

    def mount(self, mode):
        return mounted(self.nifuse, self.src, self.mnt, '--index-dir', self.idx,
                       '--cache-mode', mode, *self.mount_opts, log_file=self.log)

    def vol(self, k):
        return os.path.join(self.mnt, 'bold.nii.d', vol_name(k, self.n))

    def direct(self, off, vb):
        fd = os.open(self.bold, os.O_RDONLY)
        try:
            t0 = time.perf_counter()
            nbytes = sum(pread_range(fd, off + k * vb, vb, self.buf) for k in range(self.n))
            return time.perf_counter() - t0, nbytes
        finally:
            os.close(fd)

    def one_pass(self, pid):
        """Reads every volume file; returns (seconds, bytes, daemon CPU seconds)."""
        cpu0 = cpu_seconds(pid)
        t0 = time.perf_counter()
        nbytes = sum(read_whole(self.vol(k), self.buf) for k in range(self.n))
        t = time.perf_counter() - t0
        return t, nbytes, cpu_seconds(pid) - cpu0

    def nifuse_passes(self, mode):
        """Fresh mount: first pass, then a second pass on the same mount."""
        with self.mount(mode):
            pid = daemon_pid(self.mnt)
            first = self.one_pass(pid)
            second = self.one_pass(pid)
            t0 = time.perf_counter()
            for k in range(self.n):
                os.close(os.open(self.vol(k), os.O_RDONLY))
            open_close = time.perf_counter() - t0
        return first, second, open_close

    def nibabel(self):
        import numpy as np
        import nibabel as nib
        img = nib.load(self.bold)
        t0 = time.perf_counter()
        nbytes = sum(np.asarray(img.dataobj[..., k]).nbytes for k in range(self.n))
        return time.perf_counter() - t0, nbytes

    def ls(self, path):
        t0 = time.perf_counter()
        p = subprocess.run(['ls', '-l', path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=LS_TIMEOUT)
        t = time.perf_counter() - t0
        if p.returncode != 0:
            raise BenchError(f'ls -l {path} failed: {p.stderr.decode().strip()}')
        return t

    def ls_mount(self):
        """`ls -l` of the 1,200-volume directory on a fresh mount, then warm (best of 3)."""
        d = os.path.join(self.mnt, 'x.nii.d')
        with self.mount('fill'):
            cold = self.ls(d)
            warm = min(self.ls(d) for _ in range(3))
            t0 = time.perf_counter()
            paths = [e.path for e in os.scandir(d)]
            for path in paths:
                os.lstat(path)
            lstat = time.perf_counter() - t0
            rtt = min(xattr_round_trip(paths) for _ in range(3))
            calls = xattr_calls(d)
        vols = [p for p in paths if os.path.basename(p).startswith('vol_')]
        if len(vols) != SMALL[3]:
            raise BenchError(f'{d} lists {len(vols)} volumes, expected {SMALL[3]}')
        return cold, warm, lstat, rtt, calls

    def copy_to_tmpfs(self):
        """The 120 bold volume files, copied once to tmpfs (the 4 KiB page-cache floor)."""
        if not os.path.isdir(SHM):
            raise BenchError(f'{SHM} (tmpfs) is missing; it holds the 4 KiB page-cache reference')
        self.shm = os.path.join(SHM, 'nifuse-bench-vols')
        os.makedirs(self.shm, exist_ok=True)
        with self.mount('unchanged'):
            for k in range(self.n):
                data = read_whole(self.vol(k), keep=True)
                with open(os.path.join(self.shm, vol_name(k, self.n)), 'wb') as f:
                    f.write(data)

    def tmpfs_pass(self):
        t0 = time.perf_counter()
        nbytes = sum(read_whole(os.path.join(self.shm, vol_name(k, self.n)), self.buf)
                     for k in range(self.n))
        return time.perf_counter() - t0, nbytes


def xattr_round_trip(paths):
    """Seconds per lgetxattr(user.nifti.shape) over `paths` (each one FUSE request)."""
    t0 = time.perf_counter()
    for path in paths:
        try:
            os.getxattr(path, 'user.nifti.shape', follow_symlinks=False)
        except OSError:
            pass
    return (time.perf_counter() - t0) / len(paths)


def xattr_calls(path):
    """How many xattr system calls one `ls -l PATH` makes (strace), or None without strace."""
    import shutil
    import tempfile
    if not shutil.which('strace'):
        return None
    with tempfile.NamedTemporaryFile('r', suffix='.strace') as out:
        subprocess.run(['strace', '-f', '-o', out.name, '-e',
                        'trace=getxattr,lgetxattr,fgetxattr,listxattr,llistxattr,flistxattr',
                        'ls', '-l', path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=LS_TIMEOUT, check=True)
        return sum(1 for line in out if 'xattr(' in line)


def verify(b, off, vb):
    with open(b.bold, 'rb') as f:
        src = f.read()
    xoff, xvb = layout(os.path.join(b.src, 'x.nii'), SMALL)
    with open(os.path.join(b.src, 'x.nii'), 'rb') as f:
        xsrc = f.read()
    with b.mount('unchanged'):
        verify_volumes(os.path.join(b.mnt, 'bold.nii.d'), b.n,
                       lambda k: src[off + k * vb: off + (k + 1) * vb])
        verify_volumes(os.path.join(b.mnt, 'x.nii.d'), SMALL[3],
                       lambda k: xsrc[xoff + k * xvb: xoff + (k + 1) * xvb])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nifuse', default=DEFAULT_NIFUSE)
    ap.add_argument('--rounds', type=int, default=7)
    ap.add_argument('--workdir', default='/tmp/nifuse-bench-throughput')
    ap.add_argument('-o', action='append', default=[], metavar='MOUNT_OPTION',
                    help='extra `nifuse mount -o` option for every mount (e.g. max_read=1048576)')
    args = ap.parse_args()
    b = Bench(args)
    make_sources(b.src, b.plain)
    os.makedirs(b.idx, exist_ok=True)
    off, vb = layout(b.bold, BIG)
    read_whole(b.bold)  # into the page cache
    verify(b, off, vb)
    b.copy_to_tmpfs()
    print(f'source {b.bold}: {BIG} int16, {os.path.getsize(b.bold) / 1e6:.1f} MB, in page cache; '
          f'all {b.n} + {SMALL[3]} volumes verified against the source bytes')
    keys = ('direct', 'first_u', 'reread_u', 'first_f', 'reread_f', 'tmpfs', 'nibabel')
    t = {k: [] for k in keys}
    ratio = {k: [] for k in keys}
    nbytes, cpu = {}, {k: [0.0, 0] for k in keys}
    ls_cold, ls_warm, ls_plain, ls_py, opens, rtts, ls_calls = [], [], [], [], [], [], []

    def timed(key, secs, n, direct):
        t[key].append(secs)
        nbytes[key] = n
        ratio[key].append((n / secs) / (nbytes['direct'] / direct))

    for rnd in range(args.rounds):
        for mode, suffix in (('unchanged', 'u'), ('fill', 'f')):
            t_d, nbytes['direct'] = b.direct(off, vb)
            t['direct'].append(t_d)
            first, second, open_close = b.nifuse_passes(mode)
            opens.append(open_close)
            for key, (secs, n, c) in zip((f'first_{suffix}', f'reread_{suffix}'), (first, second)):
                timed(key, secs, n, t_d)
                cpu[key][0] += c
                cpu[key][1] += n
        t_d, nbytes['direct'] = b.direct(off, vb)
        t['direct'].append(t_d)
        timed('tmpfs', *b.tmpfs_pass(), t_d)
        timed('nibabel', *b.nibabel(), t_d)
        cold, warm, lstat, rtt, calls = b.ls_mount()
        ls_cold.append(cold), ls_warm.append(warm), ls_py.append(lstat), rtts.append(rtt)
        ls_calls.append(calls)
        ls_plain.append(min(b.ls(b.plain) for _ in range(3)))
        print(f'round {rnd + 1}/{args.rounds}: direct {nbytes["direct"] / t_d / 1e9:.2f} GB/s, '
              f'first read (unchanged) {nbytes["first_u"] / t["first_u"][-1] / 1e9:.2f} GB/s, '
              f'ls -l cold {fmt_time(cold)}', flush=True)

    gbps = {k: nbytes[k] / median(t[k]) / 1e9 for k in keys}
    rows = [('direct pread (limit)', f'{gbps["direct"]:.2f} GB/s', '-', '1.00x', '-', '-')]
    for key, name, goal in (('first_u', 'first read (unchanged)', 0.4),
                            ('first_f', 'first read (fill)', 0.4),
                            ('reread_u', 're-read (unchanged)', 0.7),
                            ('reread_f', 're-read (fill)', 0.7),
                            ('tmpfs', 'same files on tmpfs (4 KiB floor)', None),
                            ('nibabel', 'nibabel dataobj[..., k]', None)):
        r = median(ratio[key])
        rows.append((name, f'{gbps[key]:.2f} GB/s', f'{gbps["direct"]:.2f} GB/s', f'{r:.2f}x',
                     f'>= {goal}x' if goal else '-', verdict(r, goal) if goal else '-'))
    for name, xs, goal in (('ls -l 1200 vols (fresh mount)', ls_cold, 4.0),
                           ('ls -l 1200 vols (warm)', ls_warm, 1.5)):
        r = median([x / p for x, p in zip(xs, ls_plain)])
        rows.append((name, fmt_time(median(xs)), fmt_time(median(ls_plain)) + ' plain dir',
                     f'{r:.2f}x', f'<= {goal}x', 'PASS' if r <= goal else 'MISS'))
    most = max(ls_calls) if ls_calls else None
    rows.append(('xattr calls of one ls -l (strace)', str(most), '-', '-', '<= 6',
                 'PASS' if most is not None and most <= 6 else 'MISS'))
    print_table(rows, f'nifuse throughput benchmark: median of {args.rounds} rounds '
                      f'(ratio = median over rounds of throughput / direct of the same round)'
                      + (f'; mount options {",".join(args.o)}' if args.o else ''))
    floor = median(ratio['reread_u']) / median(ratio['tmpfs'])
    rtt = median(rtts)
    print(f'\nre-read (unchanged) / 4 KiB page-cache floor: {floor:.2f}x')
    print(f'one FUSE request (lgetxattr user.nifti.shape, in-process): {rtt * 1e6:.1f} us')
    print('\ndaemon CPU per GB served (utime+stime, summed over rounds):')
    for key in ('first_u', 'first_f', 'reread_u', 'reread_f'):
        secs, n = cpu[key]
        print(f'  {key:9s} {secs / (n / 1e9):6.3f} CPU-s/GB  ({secs:.2f} s over {n / 1e9:.2f} GB)')
    print(f'diagnostics: open+close of the {b.n} volume files on a warm mount (no reads): '
          f'{fmt_time(median(opens))}; in-process scandir+lstat of the 1,200 volumes (warm, '
          f'no xattrs): {fmt_time(median(ls_py))}')
    print(f'bytes per pass: direct {nbytes["direct"]}, nifuse {nbytes["first_u"]} (with headers), '
          f'nibabel {nbytes["nibabel"]}')
    print('all rounds (s):')
    for k in keys:
        print(f'  {k:9s} ' + ' '.join(f'{x:.4f}' for x in t[k]))
    for name, xs in (('ls_cold', ls_cold), ('ls_warm', ls_warm), ('ls_plain', ls_plain),
                     ('lstat_py', ls_py), ('opn_cls', opens), ('xattr_rt', rtts)):
        print(f'  {name:9s} ' + ' '.join(f'{x:.4f}' for x in xs))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except BenchError as e:
        print(f'bench_throughput: ERROR: {e}', file=sys.stderr)
        sys.exit(2)
