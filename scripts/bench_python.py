#!/usr/bin/env python3
"""Benchmark: random volumes of 8 .nii.gz runs, through nifuse.mounted() vs nibabel.

  .venv/bin/python scripts/bench_python.py [--nifuse target/release/nifuse] [--rounds 5]
                                           [--samples 64] [--workdir DIR]

A data-loader pattern (TorchIO/MONAI style): each sample is one random volume k of
one of 8 runs, opened afresh. Generates once, cached in WORKDIR (default
/tmp/nifuse-bench-python), 8 runs of 64x64x32x40 int16 (a smooth anatomy in an
ellipsoidal head, slow drift, a block-design response in two regions, gaussian noise
inside and rectified noise outside) saved by nibabel as src/run-K.nii.gz.

  nifuse    np.asarray(nib.load(mnt / 'run-K.nii.gz.d' / 'vol_00KK.nii', mmap=False).dataobj)
            on a mount made by this checkout's nifuse module (python/) running --nifuse BIN
  baseline  np.asarray(nib.load('src/run-K.nii.gz').dataobj[..., k])

Each round draws new samples for three passes and times nifuse and the baseline on
the same samples, one right after the other:
  first epoch   a new mount with an empty --index-dir: the first access to each run
                verifies it and builds its gzip index
  later epoch   the same mount, other samples (indexes built; caches as they are)
  new mount     a new mount that finds the saved indexes (a new session)
Ratios are baseline time / nifuse time, medians over rounds. Every array read through
the mount is compared with the baseline's for the same sample (outside the timing).
The mount uses the defaults (cache_mode fill) unless --cache-mode is given.
"""
import argparse
import os
import random
import sys
import tempfile
import time

import nibabel as nib
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'python'))
import nifuse  # noqa: E402 (this checkout's module)
from bench_common import BenchError, fmt_time, median  # noqa: E402

SHAPE = (64, 64, 32, 40)
RUNS = 8
TR = 2.0


def smooth_field(rng, shape, width):
    """Gaussian-filtered white noise (FFT), scaled to unit standard deviation."""
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in shape[:-1]], np.fft.rfftfreq(shape[-1]),
                        indexing='ij')
    kernel = np.exp(-2 * (np.pi * width) ** 2 * sum(f ** 2 for f in freqs))
    field = np.fft.irfftn(np.fft.rfftn(rng.standard_normal(shape)) * kernel, s=shape)
    return field / field.std()


def make_run(path, seed):
    """One synthetic BOLD run, int16, saved with nibabel (written atomically)."""
    rng = np.random.default_rng(seed)
    nx, ny, nz, nt = SHAPE
    axes = [np.linspace(-1, 1, n) for n in (nx, ny, nz)]
    x, y, z = np.meshgrid(*axes, indexing='ij')
    head = (x / 0.9) ** 2 + (y / 0.95) ** 2 + (z / 0.85) ** 2 < 1
    anatomy = np.where(head, 900 + 250 * smooth_field(rng, (nx, ny, nz), 3.0), 0)
    regions = [np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / 0.02)
               for cx, cy, cz in rng.uniform(-0.5, 0.5, (2, 3))]
    block = (np.arange(nt) // 10) % 2  # 10 volumes off, 10 on
    data = np.empty(SHAPE, dtype=np.int16, order='F')
    for t in range(nt):
        drift = 1 + 0.004 * t + 0.01 * np.sin(2 * np.pi * t / nt + seed)
        vol = anatomy * drift + 40 * block[t] * sum(regions) * head
        noise = rng.normal(0, 25, vol.shape)
        vol = np.where(head, vol + noise, np.abs(noise) * 0.5)
        data[..., t] = np.clip(np.round(vol), -32768, 32767)
    img = nib.Nifti1Image(data, np.diag([3.0, 3.0, 3.5, 1.0]))
    img.header.set_xyzt_units('mm', 'sec')
    img.header['pixdim'][4] = TR
    tmp = path + '.tmp.nii.gz'
    nib.save(img, tmp)
    os.rename(tmp, path)


def prepare(workdir):
    src = os.path.join(workdir, 'src')
    os.makedirs(src, exist_ok=True)
    names = [f'run-{r + 1}.nii.gz' for r in range(RUNS)]
    for r, name in enumerate(names):
        path = os.path.join(src, name)
        if not os.path.exists(path) or nib.load(path).shape != SHAPE:
            print(f'generating {path}', flush=True)
            make_run(path, seed=100 + r)
    return src, names


def baseline_read(src, name, k):
    return np.asarray(nib.load(os.path.join(src, name)).dataobj[..., k])


def nifuse_read(mnt, name, k):
    return np.asarray(nib.load(mnt / f'{name}.d' / f'vol_{k:04d}.nii', mmap=False).dataobj)


def timed(read, where, samples):
    """Seconds for reading every sample with `read`, and the arrays read."""
    arrays = []
    t0 = time.perf_counter()
    for name, k in samples:
        arrays.append(read(where, name, k))
    return time.perf_counter() - t0, arrays


def compare(samples, got, expected, what):
    for (name, k), a, b in zip(samples, got, expected):
        if a.shape != SHAPE[:3] or not np.array_equal(a, b):
            raise BenchError(f'{what}: {name} volume {k} differs from nibabel\'s dataobj[..., {k}]')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nifuse', default=os.path.join(os.path.dirname(HERE), 'target/release/nifuse'))
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--samples', type=int, default=64, help='random volumes per pass')
    ap.add_argument('--cache-mode', choices=('fill', 'unchanged'), default=None)
    ap.add_argument('--workdir', default='/tmp/nifuse-bench-python')
    args = ap.parse_args()
    if not os.access(args.nifuse, os.X_OK):
        raise BenchError(f'{args.nifuse}: no nifuse binary (cargo build --release, or give --nifuse)')
    os.environ['NIFUSE_BIN'] = os.path.abspath(args.nifuse)
    options = {'cache_mode': args.cache_mode}
    src, names = prepare(args.workdir)
    comp = sum(os.path.getsize(os.path.join(src, n)) for n in names)
    raw = RUNS * int(np.prod(SHAPE)) * 2
    from nibabel import _compression
    print(f'{RUNS} runs {SHAPE} int16: {comp / 1e6:.1f} MB compressed, {raw / 1e6:.1f} MB of voxels; '
          f'nibabel {nib.__version__}, indexed_gzip {"yes" if _compression.HAVE_INDEXED_GZIP else "no"}; '
          f'{args.samples} random volumes per pass, {args.rounds} rounds', flush=True)

    rng = random.Random(0)
    passes = ('first epoch', 'later epoch', 'new mount')
    times = {p: {'nifuse': [], 'baseline': []} for p in passes}

    def measure(pas, mnt):
        samples = [(rng.choice(names), rng.randrange(SHAPE[3])) for _ in range(args.samples)]
        if rnd % 2:  # alternate which goes first
            t_base, expected = timed(baseline_read, src, samples)
            t_nif, got = timed(nifuse_read, mnt, samples)
        else:
            t_nif, got = timed(nifuse_read, mnt, samples)
            t_base, expected = timed(baseline_read, src, samples)
        compare(samples, got, expected, pas)
        times[pas]['nifuse'].append(t_nif)
        times[pas]['baseline'].append(t_base)

    for rnd in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix='nifuse-bench-idx-') as index_dir:
            with nifuse.mounted(src, index_dir=index_dir, **options) as mnt:
                measure('first epoch', mnt)
                measure('later epoch', mnt)
            with nifuse.mounted(src, index_dir=index_dir, **options) as mnt:
                measure('new mount', mnt)
        print(f'round {rnd + 1}/{args.rounds}: ' + ', '.join(
            f'{p} {fmt_time(times[p]["nifuse"][-1])} vs {fmt_time(times[p]["baseline"][-1])}'
            for p in passes), flush=True)

    mode = args.cache_mode or 'fill, the default'
    print(f'\nnifuse.mounted() (cache_mode {mode}) vs nib.load(f).dataobj[..., k]: time per volume, '
          f'median of {args.rounds} rounds; ratio = baseline / nifuse, median of per-round ratios')
    print(f'{"pass":12s} {"nifuse":>9s} {"baseline":>9s} {"ratio":>7s}')
    for p in passes:
        nif, base = times[p]['nifuse'], times[p]['baseline']
        ratio = median([b / n for n, b in zip(nif, base)])
        print(f'{p:12s} {fmt_time(median(nif) / args.samples):>9s} '
              f'{fmt_time(median(base) / args.samples):>9s} {ratio:>6.1f}x')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (BenchError, nifuse.NifuseError) as e:
        print(f'bench_python: ERROR: {e}', file=sys.stderr)
        sys.exit(2)
