#!/usr/bin/env python3
"""Benchmark: the first touch of a never-indexed .nii.gz through nifuse, against
nibabel + indexed_gzip and rapidgzip, and nifuse's first pass against a one-shot
zlib-rs inflate.

  .venv/bin/python scripts/bench_gzip_first.py [--nifuse BIN] [--rounds 5] [--workdir DIR]

BIN defaults to target/release/nifuse (cargo build --release). Needs the venv of
scripts/setup-deps plus rapidgzip (`.venv/bin/pip install rapidgzip==0.16.1`), and
cargo (the in-process first-pass measurement is `examples/gzip_pass.rs`).
The image, made once in WORKDIR (default /tmp/nifuse-bench-gzip-first) by
bench_gzip.make_image, is 96x96x64x120 int16 (smooth blobs with a drift plus noise,
141 MB raw), saved by nibabel as src/bold.nii.gz; it is read once before the
rounds so that the source is in the page cache.

Scenarios (median of rounds, interleaved; every baseline in a fresh python process,
timed inside it; ratio = baseline time / nifuse time):
  first / middle / last   read all of vol_0000 / vol_0059 / vol_0119 on a fresh mount
                          with an empty --index-dir (fill, the default, and unchanged)
                          vs nib.load(f).dataobj[..., k] (indexed_gzip) and
                          rapidgzip.open(f, parallelization=os.cpu_count()) seek + read
                          of the volume's bytes.  goals: nibabel 3x first, 1.5x middle
                          and last; rapidgzip 1.2x middle and last
  first pass              GzAccess::build_all vs one-shot zlib-rs inflate of the whole
                          file in one process (examples/gzip_pass.rs)   goal >= 0.85x
  fill                    with a complete saved index (`nifuse index`), fill mode: from
                          the first read of vol_0000 until .nifuse/stats says the cache
                          is full, the daemon on all cores vs pinned to one
                          (`taskset -c 0`, so it fills on one thread)   goal >= 1.6x
Every volume read through nifuse is checked against the source bytes (outside timing).
Exits 0 on MISS, non-zero on errors.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_gzip
from bench_common import (BenchError, fmt_time, median, mounted, print_table, read_whole,
                          verdict, vol_name, volume_voxels)

SHAPE = (96, 96, 64, 120)
VOLS = (('first', 0), ('middle', 59), ('last', 119))
WORKER_TIMEOUT = 300
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = r'''
import json, os, sys, time, hashlib
mode, f, k, off, vb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if mode == "nibabel":
    import numpy as np, nibabel as nib
    from nibabel import _compression
    assert _compression.HAVE_INDEXED_GZIP, "indexed_gzip is not importable"
    t0 = time.perf_counter()
    a = np.asarray(nib.load(f).dataobj[..., k])
    t = time.perf_counter() - t0
    b = a.tobytes(order="F")
else:
    import rapidgzip
    t0 = time.perf_counter()
    with rapidgzip.open(f, parallelization=os.cpu_count()) as g:
        g.seek(off + k * vb)
        b = g.read(vb)
    t = time.perf_counter() - t0
print(json.dumps({"t": t, "sha": hashlib.sha1(b).hexdigest()}))
'''


def baseline(mode, path, k, off, vb):
    p = subprocess.run([sys.executable, '-c', WORKER, mode, path, str(k), str(off), str(vb)],
                       capture_output=True, text=True, timeout=WORKER_TIMEOUT)
    if p.returncode != 0:
        raise BenchError(f'{mode} worker failed: {p.stderr.strip()[-500:]}')
    return json.loads(p.stdout.strip().splitlines()[-1])


def first_pass(path, rounds, vb, off):
    """Runs examples/gzip_pass.rs: (median one-shot s, median pass s, ratio, lines)."""
    cmd = ['cargo', 'run', '--quiet', '--release', '--example', 'gzip_pass', '--',
           path, str(rounds), str(vb), str(off)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800)
    if p.returncode != 0:
        raise BenchError(f'gzip_pass failed: {p.stderr.strip()[-800:]}')
    m = re.search(r'median one-shot ([\d.]+) pass ([\d.]+) ratio ([\d.]+)', p.stdout)
    if not m:
        raise BenchError(f'gzip_pass printed no median: {p.stdout}')
    return float(m.group(1)), float(m.group(2)), float(m.group(3)), p.stdout.strip().splitlines()


def fill_time(nifuse, src, mnt, idx, log):
    """Seconds from the first read of vol_0000 to a full cache (fill mode, saved index)."""
    with mounted(nifuse, src, mnt, '--index-dir', idx, '--cache-mode', 'fill', log_file=log):
        path = os.path.join(mnt, 'bold.nii.gz.d', vol_name(0, SHAPE[3]))
        t0 = time.perf_counter()
        read_whole(path)
        while True:
            with open(os.path.join(mnt, '.nifuse', 'stats')) as f:
                row = json.load(f)['images'][0]
            if row['cache_state'] == 'full':
                return time.perf_counter() - t0
            if row['cache_state'] == 'partial' or time.perf_counter() - t0 > 120:
                raise BenchError(f'the fill did not complete: {row}')
            time.sleep(0.002)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nifuse', default=os.path.join(ROOT, 'target/release/nifuse'))
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--workdir', default='/tmp/nifuse-bench-gzip-first')
    args = ap.parse_args()
    work = os.path.abspath(args.workdir)
    src, mnt = os.path.join(work, 'src'), os.path.join(work, 'mnt')
    image = os.path.join(src, 'bold.nii.gz')
    os.makedirs(src, exist_ok=True)
    if not os.path.exists(image):
        print(f'generating {image} ...', flush=True)
        bench_gzip.SHAPE = SHAPE
        bench_gzip.make_image(image)
    import gzip
    import nibabel as nib
    img = nib.load(image)
    if tuple(img.header.get_data_shape()) != SHAPE:
        raise BenchError(f'{image} has shape {img.header.get_data_shape()}; delete it')
    off, vb = int(img.dataobj.offset), SHAPE[0] * SHAPE[1] * SHAPE[2] * 2
    with open(image, 'rb') as f:
        raw = gzip.decompress(f.read())
    truth = {k: raw[off + k * vb: off + (k + 1) * vb] for _, k in VOLS}
    sha = {k: hashlib.sha1(v).hexdigest() for k, v in truth.items()}
    comp = os.path.getsize(image)
    print(f'image {image}: {SHAPE} int16, {comp / 1e6:.1f} MB compressed, {len(raw) / 1e6:.1f} MB raw')
    nproc = os.cpu_count()
    r = {}

    def add(key, t):
        r.setdefault(key, []).append(t)

    idx = os.path.join(work, 'idx')
    for rnd in range(args.rounds):
        for name, k in VOLS:
            for mode in ('fill', 'unchanged'):
                shutil.rmtree(idx, ignore_errors=True)
                os.makedirs(idx)
                with mounted(args.nifuse, src, mnt, '--index-dir', idx, '--cache-mode', mode,
                             log_file=os.path.join(work, 'nifuse.log')):
                    path = os.path.join(mnt, 'bold.nii.gz.d', vol_name(k, SHAPE[3]))
                    t0 = time.perf_counter()
                    data = read_whole(path, keep=True)
                    add(f'{name}_{mode}', time.perf_counter() - t0)
                if volume_voxels(data, path) != truth[k]:
                    raise BenchError(f'{path}: wrong voxel bytes')
            for base in ('nibabel', 'rapidgzip'):
                out = baseline(base, image, k, off, vb)
                if out['sha'] != sha[k]:
                    raise BenchError(f'{base} returned wrong bytes for volume {k}')
                add(f'{name}_{base}', out['t'])
        print(f'round {rnd + 1}/{args.rounds}: ' + ', '.join(
            f'{n} {fmt_time(r[n + "_fill"][-1])} / nib {fmt_time(r[n + "_nibabel"][-1])} / '
            f'rgz {fmt_time(r[n + "_rapidgzip"][-1])}' for n, _ in VOLS), flush=True)
    full_idx = os.path.join(work, 'idx_full')
    shutil.rmtree(full_idx, ignore_errors=True)
    subprocess.run([args.nifuse, 'index', '--index-dir', full_idx, image], check=True,
                   capture_output=True, timeout=600)
    pinned = os.path.join(work, 'nifuse-one-core')
    with open(pinned, 'w') as f:
        f.write(f'#!/bin/sh\nexec taskset -c 0 {args.nifuse} "$@"\n')
    os.chmod(pinned, 0o755)
    log = os.path.join(work, 'nifuse.log')
    for rnd in range(args.rounds):
        add('fill_all', fill_time(args.nifuse, src, mnt, full_idx, log))
        add('fill_one', fill_time(pinned, src, mnt, full_idx, log))
    one, pas, pass_ratio, lines = first_pass(image, args.rounds, vb, off)
    m = {key: median(v) for key, v in r.items()}
    goals = {'first': (3, None), 'middle': (1.5, 1.2), 'last': (1.5, 1.2)}
    rows = []
    for name, k in VOLS:
        for mode in ('fill', 'unchanged'):
            nif = m[f'{name}_{mode}']
            for base in ('nibabel', 'rapidgzip'):
                goal = goals[name][0 if base == 'nibabel' else 1]
                ratio = m[f'{name}_{base}'] / nif
                rows.append((f'{name} vol_{k:04d} ({mode}) vs {base}', fmt_time(nif),
                             fmt_time(m[f'{name}_{base}']), f'{ratio:.2f}x',
                             f'>= {goal}x' if goal else '-', verdict(ratio, goal) if goal else ''))
    rows.append(('first pass vs one-shot zlib-rs inflate', fmt_time(pas), fmt_time(one),
                 f'{pass_ratio:.2f}x', '>= 0.85x', verdict(pass_ratio, 0.85)))
    fill_ratio = m['fill_one'] / m['fill_all']
    rows.append((f'fill with an index, {nproc} cores vs one', fmt_time(m['fill_all']),
                 fmt_time(m['fill_one']), f'{fill_ratio:.2f}x', '>= 1.6x', verdict(fill_ratio, 1.6)))
    print_table(rows, f'nifuse first touch of a .nii.gz: median of {args.rounds} rounds, '
                      f'{nproc} cores (ratio = baseline time / nifuse time)')
    print('first pass rounds (examples/gzip_pass.rs):')
    for line in lines:
        print('  ' + line)
    print('all rounds (s):')
    for key, v in r.items():
        print(f'  {key:18s} ' + ' '.join(f'{x:.4f}' for x in v))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except BenchError as e:
        print(f'bench_gzip_first: ERROR: {e}', file=sys.stderr)
        sys.exit(2)
