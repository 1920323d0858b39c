#!/usr/bin/env python3
"""Benchmark: nifuse on a gzip-compressed 4D NIfTI vs nibabel + indexed_gzip.

  /opt/nifuse-venv/bin/python scripts/bench_gzip.py [--nifuse BIN] [--rounds 5] [--workdir DIR]

BIN defaults to /tmp/bench-target/release/nifuse (build it with
`CARGO_TARGET_DIR=/tmp/bench-target cargo build --release`). Generates once, cached in
WORKDIR (default /tmp/nifuse-bench-gzip), a realistic 96x96x64x60 int16 image (gaussian
blobs in an ellipsoidal "brain" with a slow temporal drift, gaussian noise inside, rectified
noise outside) saved by nibabel as src/bold.nii.gz (~47 MB). Every volume read through nifuse
is checked once per run against the decompressed source bytes (outside timing).

Scenarios (median of rounds; nifuse and baseline interleaved in each round; nibabel runs in
a fresh `python` process, timed inside it from nib.load to the array, wall time also shown):
  cold        read all of vol_0059.nii on a fresh mount with an empty --index-dir
              vs nib.load(f).dataobj[..., 59]                              goal >= 1.5x
  warm        20 random volumes (seed 0) on a mount whose index is built (vol_0059 read
              first, untimed) vs one image object, last volume touched, then 20
              dataobj[..., k]                                              goal >= 5x
  new process the same 20 volumes on a new mount reusing the saved --index-dir (nothing
              read before) vs 20 x nib.load(f).dataobj[..., k] in one process   goal >= 30x
  sequential  every volume in order on a new mount with the saved index, vs one
              zlib inflate of the whole file in memory (MB/s of voxel data)     goal >= 0.8x
Rows marked (fill) / (unchanged) give the --cache-mode; the default is fill. Exits 0 on
MISS, non-zero on errors (wrong bytes, mount failures, timeouts).
"""
import argparse
import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (DEFAULT_NIFUSE, BenchError, fmt_time, median, mounted,
                          print_table, read_whole, verdict, verify_volumes, vol_name)

SHAPE = (96, 96, 64, 60)
NOISE_IN, NOISE_OUT = 100.0, 40.0   # tuned for ~47 MB at nibabel's gzip level 1
N_RANDOM = 20
WORKER_TIMEOUT = 300


def make_image(path):
    """Smooth blobs with a slow drift plus noise, int16, saved with nibabel."""
    import numpy as np
    import nibabel as nib
    nx, ny, nz, nt = SHAPE
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in (nx, ny, nz)],
                          indexing='ij')
    brain = (x / 0.95) ** 2 + (y / 0.98) ** 2 + (z / 0.95) ** 2 < 1
    rng = np.random.default_rng(12345)
    blobs = [(rng.uniform(-.6, .6, 3), rng.uniform(.05, .3), rng.uniform(100, 400),
              rng.uniform(0, 2 * np.pi)) for _ in range(6)]
    data = np.empty(SHAPE, dtype=np.int16, order='F')
    for t in range(nt):
        vol = np.full((nx, ny, nz), 800.0, dtype=np.float32)
        for (cx, cy, cz), width, amp, phase in blobs:
            drift = 1 + 0.1 * np.sin(2 * np.pi * t / nt + phase) + 0.002 * t
            vol += amp * drift * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / width)
        vol = np.where(brain, vol + rng.normal(0, NOISE_IN, vol.shape),
                       np.abs(rng.normal(0, NOISE_OUT, vol.shape)))
        data[..., t] = np.clip(np.round(vol), -32768, 32767)
    img = nib.Nifti1Image(data, np.diag([3.0, 3.0, 3.0, 1.0]))
    img.header.set_xyzt_units('mm', 'sec')
    img.header['pixdim'][4] = 2.0
    tmp = path + '.tmp.nii.gz'
    nib.save(img, tmp)
    os.rename(tmp, path)


# ---------------------------------------------------------------- baseline (nibabel) workers
WORKER = r'''
import json, sys, time, hashlib
import numpy as np, nibabel as nib
from nibabel import _compression
assert _compression.HAVE_INDEXED_GZIP, "indexed_gzip is not importable"
mode, f, ks = sys.argv[1], sys.argv[2], [int(k) for k in sys.argv[3].split(",")]
def arr(img, k):
    return np.asarray(img.dataobj[..., k])
if mode == "cold":
    t0 = time.perf_counter(); a = arr(nib.load(f), ks[0]); t = time.perf_counter() - t0
    out = {"t": t, "sha": hashlib.sha1(a.tobytes(order="F")).hexdigest()}
elif mode == "warm":
    img = nib.load(f); arr(img, ks[0])
    t0 = time.perf_counter()
    for k in ks[1:]: arr(img, k)
    out = {"t": time.perf_counter() - t0,
           "opener": type(getattr(getattr(img.dataobj, "_opener", None), "fobj", None)).__name__}
elif mode == "fresh":
    t0 = time.perf_counter()
    for k in ks: arr(nib.load(f), k)
    out = {"t": time.perf_counter() - t0}
print(json.dumps(out))
'''


def baseline(mode, path, ks):
    """Runs the nibabel worker in a new process: (in-process seconds, wall seconds, result)."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, '-c', WORKER, mode, path, ','.join(map(str, ks))],
                       capture_output=True, text=True, timeout=WORKER_TIMEOUT)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise BenchError(f'nibabel worker {mode} failed: {p.stderr.strip()[-500:]}')
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return out['t'], wall, out


def inflate_time(path):
    """Seconds for one in-memory inflate of the whole gzip file (file read not timed)."""
    with open(path, 'rb') as f:
        comp = f.read()
    t0 = time.perf_counter()
    raw = zlib.decompressobj(wbits=31).decompress(comp)
    return time.perf_counter() - t0, len(raw)


# ---------------------------------------------------------------- nifuse measurements
class Bench:
    def __init__(self, args):
        self.nifuse = os.path.abspath(args.nifuse)
        self.work = os.path.abspath(args.workdir)
        self.src = os.path.join(self.work, 'src')
        self.image = os.path.join(self.src, 'bold.nii.gz')
        self.mnt = os.path.join(self.work, 'mnt')
        self.idx = os.path.join(self.work, 'idx_main')
        self.log = os.path.join(self.work, 'nifuse.log')
        self.n = SHAPE[3]
        self.notes, self.seen = [], set()
        self.ks = random.Random(0).sample(range(self.n - 1), N_RANDOM)

    def voldir(self):
        return os.path.join(self.mnt, 'bold.nii.gz.d')

    def vol(self, k):
        return os.path.join(self.voldir(), vol_name(k, self.n))

    def mount(self, index_dir, mode):
        return mounted(self.nifuse, self.src, self.mnt, '--index-dir', index_dir,
                       '--cache-mode', mode, log_file=self.log)

    def stats(self):
        with open(os.path.join(self.mnt, '.nifuse', 'stats')) as f:
            return json.load(f)

    def timed_reads(self, ks):
        t0 = time.perf_counter()
        nbytes = sum(read_whole(self.vol(k)) for k in ks)
        return time.perf_counter() - t0, nbytes

    def cold(self, mode):
        fresh = os.path.join(self.work, f'idx_cold_{mode}')
        shutil.rmtree(fresh, ignore_errors=True)
        os.makedirs(fresh)
        try:
            with self.mount(fresh, mode):
                t = self.timed_reads([self.n - 1])[0]
                st = self.stats()['images'][0]
            if mode not in self.seen:
                self.seen.add(mode)
                saved = sum(os.path.getsize(os.path.join(fresh, f)) for f in os.listdir(fresh))
                self.notes.append(f'cold ({mode}) after reading vol_0059: index "{st["index"]}", '
                                  f'cache {st["cache_state"]}, {saved} index bytes saved at unmount')
            return t
        finally:
            shutil.rmtree(fresh, ignore_errors=True)

    def warm(self, mode):
        with self.mount(self.idx, mode):
            read_whole(self.vol(self.n - 1))
            return self.timed_reads(self.ks)[0]

    def new_process(self, mode):
        with self.mount(self.idx, mode):
            return self.timed_reads(self.ks)[0]

    def sequential(self, mode):
        with self.mount(self.idx, mode):
            return self.timed_reads(range(self.n))


def prepare(b):
    """Generates the image if needed; rebuilds the saved index and checks every volume."""
    os.makedirs(b.src, exist_ok=True)
    if not os.path.exists(b.image):
        print(f'generating {b.image} ...', flush=True)
        make_image(b.image)
    import nibabel as nib
    img = nib.load(b.image)
    hdr = img.header
    if tuple(hdr.get_data_shape()) != SHAPE:
        raise BenchError(f'{b.image} has shape {hdr.get_data_shape()}, expected {SHAPE}; delete it')
    with open(b.image, 'rb') as f:
        raw = gzip.decompress(f.read())
    off, vb = int(img.dataobj.offset), SHAPE[0] * SHAPE[1] * SHAPE[2] * 2
    shutil.rmtree(b.idx, ignore_errors=True)
    os.makedirs(b.idx)
    notes = []
    with b.mount(b.idx, 'unchanged'):
        verify_volumes(b.voldir(), b.n, lambda k: raw[off + k * vb: off + (k + 1) * vb])
        notes.append(f'after reading all volumes (unchanged): {b.stats()["images"]}')
    idx_bytes = sum(os.path.getsize(os.path.join(b.idx, f)) for f in os.listdir(b.idx))
    expect59 = hashlib.sha1(raw[off + 59 * vb: off + 60 * vb]).hexdigest()
    return raw, idx_bytes, expect59, notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nifuse', default=DEFAULT_NIFUSE)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--workdir', default='/tmp/nifuse-bench-gzip')
    args = ap.parse_args()
    b = Bench(args)
    raw, idx_bytes, expect59, notes = prepare(b)
    comp_size = os.path.getsize(b.image)
    vox_bytes = b.n * SHAPE[0] * SHAPE[1] * SHAPE[2] * 2
    print(f'image {b.image}: shape {SHAPE} int16, {comp_size / 1e6:.1f} MB compressed, '
          f'{len(raw) / 1e6:.1f} MB uncompressed ({100 * comp_size / len(raw):.1f}%)')
    print(f'all {b.n} volumes verified against the source bytes; random volumes: {b.ks}')
    r = {key: [] for key in ('cold_f', 'cold_u', 'cold_b', 'cold_bw', 'warm_f', 'warm_u', 'warm_b',
                             'new_u', 'new_f', 'new_b', 'new_bw', 'seq_f', 'seq_u', 'seq_b')}
    for rnd in range(args.rounds):
        r['cold_f'].append(b.cold('fill'))
        r['cold_u'].append(b.cold('unchanged'))
        t, wall, out = baseline('cold', b.image, [b.n - 1])
        if out['sha'] != expect59:
            raise BenchError('nibabel baseline returned wrong bytes for volume 59')
        r['cold_b'].append(t), r['cold_bw'].append(wall)
        r['warm_f'].append(b.warm('fill'))
        r['warm_u'].append(b.warm('unchanged'))
        t, _, out = baseline('warm', b.image, [b.n - 1] + b.ks)
        r['warm_b'].append(t)
        if rnd == 0:
            b.notes.append(f'nibabel baseline reads through {out["opener"]} (kept open by the proxy)')
        r['new_u'].append(b.new_process('unchanged'))
        r['new_f'].append(b.new_process('fill'))
        t, wall, _ = baseline('fresh', b.image, b.ks)
        r['new_b'].append(t), r['new_bw'].append(wall)
        for mode, key in (('fill', 'seq_f'), ('unchanged', 'seq_u')):
            r[key].append(b.sequential(mode)[0])
        t, _ = inflate_time(b.image)
        r['seq_b'].append(t)
        print(f'round {rnd + 1}/{args.rounds}: cold {fmt_time(r["cold_f"][-1])} vs '
              f'{fmt_time(r["cold_b"][-1])}, new process {fmt_time(r["new_u"][-1])} vs '
              f'{fmt_time(r["new_b"][-1])}', flush=True)
    m = {k: median(v) for k, v in r.items()}
    rows = []

    def row(name, nif, base, goal, base_note=''):
        ratio = base / nif
        rows.append((name, fmt_time(nif), fmt_time(base) + base_note, f'{ratio:.2f}x',
                     f'>= {goal}x', verdict(ratio, goal)))

    row('cold vol_0059 (fill)', m['cold_f'], m['cold_b'], 1.5)
    row('cold vol_0059 (unchanged)', m['cold_u'], m['cold_b'], 1.5)
    row('warm 20 vols (fill)', m['warm_f'], m['warm_b'], 5)
    row('warm 20 vols (unchanged)', m['warm_u'], m['warm_b'], 5)
    row('new process 20 vols (unchanged)', m['new_u'], m['new_b'], 30)
    row('new process 20 vols (fill)', m['new_f'], m['new_b'], 30)
    mbps = lambda t: vox_bytes / t / 1e6
    for key, name in (('seq_f', 'sequential 60 vols (fill)'), ('seq_u', 'sequential 60 vols (unchanged)')):
        ratio = mbps(m[key]) / mbps(m['seq_b'])
        rows.append((name, f'{mbps(m[key]):.0f} MB/s', f'{mbps(m["seq_b"]):.0f} MB/s',
                     f'{ratio:.2f}x', '>= 0.8x', verdict(ratio, 0.8)))
    print_table(rows, f'nifuse gzip benchmark: median of {args.rounds} rounds '
                      f'(ratio = baseline time / nifuse time)')
    print(f'\nbaseline whole-process wall time (python start + imports + work): cold '
          f'{fmt_time(m["cold_bw"])}, new process {fmt_time(m["new_bw"])}')
    print(f'nifuse sequential times: fill {fmt_time(m["seq_f"])}, unchanged {fmt_time(m["seq_u"])}; '
          f'zlib inflate {fmt_time(m["seq_b"])}')
    print(f'index on disk ({b.idx}): {idx_bytes / 1e6:.2f} MB = '
          f'{100 * idx_bytes / len(raw):.2f}% of uncompressed, {100 * idx_bytes / comp_size:.2f}% of compressed')
    print('all rounds (s):')
    for k, v in r.items():
        print(f'  {k:7s} ' + ' '.join(f'{x:.4f}' for x in v))
    for note in notes + b.notes:
        print('note:', note)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except BenchError as e:
        print(f'bench_gzip: ERROR: {e}', file=sys.stderr)
        sys.exit(2)
