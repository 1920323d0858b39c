#!/usr/bin/env python3
"""Benchmark: the views of NAME.d/ (whole image, ranges, float, slices) against their baselines.

  .venv/bin/python scripts/bench_views.py [--nifuse BIN] [--rounds 5] [--workdir DIR]

Uses the image of bench_gzip.py (96x96x64x60 int16, smooth signal plus noise, made once in
WORKDIR, default /tmp/nifuse-bench-views), as bold.nii.gz and as an uncompressed copy
bold.nii. Every view read is checked once per run against nibabel (outside timing). Each
round interleaves nifuse and its baseline; medians over rounds; each nifuse pass is on a
fresh mount (`--cache-mode unchanged`, so no cache fill competes), the source in the page
cache.

  whole .nii.gz    read NAME.d/bold.nii (the image uncompressed) start to end on a fresh
                   mount with an empty index dir, vs one zlib inflate of the whole file
                   in this process (time ratio)                               goal >= 1.0x
  range            read vols_0010-0019.nii vs the ten vol_0010..vol_0019.nii, same mount
                   kind (time ratio, .nii and .nii.gz with a saved index)     goal <= 1.2x
  float32          throughput of float32/vol_0030.nii vs vol_0030.nii (.nii) goal >= 0.5x
  z slice          z/slice_0032.nii of the .nii.gz with its index built: time, and bytes
                   inflated per slice (from .nifuse/stats) against the compressed size of
                   the 60 volumes it spans
Exits 0 on MISS, non-zero on errors (wrong bytes, mount failures).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (DEFAULT_NIFUSE, BenchError, median, mounted, print_table, read_whole,
                          verdict)
from bench_gzip import SHAPE, make_image


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def check_views(mnt, src_nii):
    """The views the benchmark reads hold what nibabel says (once, untimed)."""
    import numpy as np
    import nibabel as nib
    src = nib.load(src_nii)
    arr = np.asanyarray(src.dataobj)
    d = os.path.join(mnt, 'bold.nii.gz.d')
    checks = [
        ('bold.nii', arr),
        ('vols_0010-0019.nii', arr[..., 10:20]),
        ('z/slice_0032.nii', arr[:, :, 32:33]),
    ]
    for name, want in checks:
        got = np.asanyarray(nib.load(os.path.join(d, name)).dataobj)
        if got.shape != want.shape or not np.array_equal(got, want):
            raise BenchError(f'{name}: data differ from the source')
    if os.path.isdir(os.path.join(d, 'float32')):
        want = src.get_fdata(dtype=np.float32)[..., 30]
        got = np.asanyarray(nib.load(os.path.join(d, 'float32/vol_0030.nii')).dataobj)
        if got.dtype != np.float32 or not np.array_equal(got, want):
            raise BenchError('float32/vol_0030.nii differs from get_fdata(dtype=float32)')


def stats_image(mnt, name):
    with open(os.path.join(mnt, '.nifuse/stats')) as f:
        for row in json.load(f)['images']:
            if row['path'] == name:
                return row
    raise BenchError(f'{name} not in .nifuse/stats')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nifuse', default=DEFAULT_NIFUSE)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--workdir', default='/tmp/nifuse-bench-views')
    args = ap.parse_args()
    nifuse = os.path.abspath(args.nifuse)
    src = os.path.join(args.workdir, 'src')
    gz, nii = os.path.join(src, 'bold.nii.gz'), os.path.join(src, 'bold.nii')
    os.makedirs(src, exist_ok=True)
    if not os.path.exists(gz):
        make_image(gz)
    if not os.path.exists(nii):
        import nibabel as nib
        nib.save(nib.load(gz), nii + '.tmp.nii')
        os.rename(nii + '.tmp.nii', nii)
    raw = open(gz, 'rb').read()
    read_whole(nii)
    mnt = os.path.join(args.workdir, 'mnt')
    index = os.path.join(args.workdir, 'index')

    def fresh(index_dir=None):
        if index_dir is None:
            index_dir = tempfile.mkdtemp(prefix='idx-', dir=args.workdir)
        return mounted(nifuse, src, mnt, '--cache-mode', 'unchanged', '--index-dir', index_dir)

    with fresh(index):
        check_views(mnt, nii)
        read_whole(os.path.join(mnt, 'bold.nii.gz.d/vol_0059.nii'))  # index complete, saved
    results = {k: [] for k in ('whole', 'inflate', 'range_nii', 'vols_nii', 'range_gz',
                                'vols_gz', 'float', 'raw', 'slice')}
    inflated = []
    vols = [f'vol_{k:04d}.nii' for k in range(10, 20)]
    for _ in range(args.rounds):
        empty = tempfile.mkdtemp(prefix='idx-', dir=args.workdir)
        with fresh(empty):
            results['whole'].append(timed(lambda: read_whole(os.path.join(mnt, 'bold.nii.gz.d/bold.nii'))))
        shutil.rmtree(empty)
        results['inflate'].append(timed(lambda: zlib.decompress(raw, 31)))
        for ext, rng, each in (('nii', 'range_nii', 'vols_nii'), ('nii.gz', 'range_gz', 'vols_gz')):
            d = os.path.join(mnt, f'bold.{ext}.d')
            with fresh(index):
                results[rng].append(timed(lambda: read_whole(os.path.join(d, 'vols_0010-0019.nii'))))
            with fresh(index):
                results[each].append(timed(lambda: [read_whole(os.path.join(d, v)) for v in vols]))
        with fresh(index):
            results['float'].append(timed(lambda: read_whole(os.path.join(mnt, 'bold.nii.d/float32/vol_0030.nii'))))
        with fresh(index):
            results['raw'].append(timed(lambda: read_whole(os.path.join(mnt, 'bold.nii.d/vol_0030.nii'))))
        with fresh(index):
            results['slice'].append(timed(lambda: read_whole(os.path.join(mnt, 'bold.nii.gz.d/z/slice_0032.nii'))))
            inflated.append((stats_image(mnt, 'bold.nii.gz').get('pass') or {}).get('inflated_bytes'))
    m = {k: median(v) for k, v in results.items()}
    nvox = SHAPE[0] * SHAPE[1] * SHAPE[2]
    mb = lambda n, s: f'{n / s / 1e6:.0f} MB/s'
    total = nvox * SHAPE[3] * 2
    rows = [
        ('whole .nii.gz, never indexed (speed vs one-shot inflate)', mb(total, m['whole']),
         mb(total, m['inflate']), f'{m["inflate"] / m["whole"]:.2f}x', '>= 1.0x',
         verdict(m['inflate'] / m['whole'], 1.0)),
    ]
    for tag, rng, each in (('.nii', 'range_nii', 'vols_nii'), ('.nii.gz', 'range_gz', 'vols_gz')):
        ratio = m[rng] / m[each]
        rows.append((f'10-volume range vs 10 vol_K ({tag}, time)', f'{m[rng] * 1e3:.1f} ms',
                     f'{m[each] * 1e3:.1f} ms', f'{ratio:.2f}x', '<= 1.2x',
                     'PASS' if ratio <= 1.2 else 'MISS'))
    ratio = (nvox * 4 / m['float']) / (nvox * 2 / m['raw'])
    rows.append(('float32 volume vs raw volume (throughput of voxel bytes served)',
                 mb(nvox * 4, m['float']), mb(nvox * 2, m['raw']), f'{ratio:.2f}x', '>= 0.5x',
                 verdict(ratio, 0.5)))
    print_table(rows, f'views, {args.rounds} rounds, medians')
    print(f'\nz slice of the indexed .nii.gz: {m["slice"] * 1e3:.1f} ms; bytes inflated per slice: '
          f'{inflated[-1] if inflated and inflated[-1] is not None else "n/a"} '
          f'(the 60 volumes: {total} bytes uncompressed, {len(raw)} compressed)')


if __name__ == '__main__':
    try:
        main()
    except BenchError as e:
        print(f'bench_views: {e}', file=sys.stderr)
        sys.exit(1)
