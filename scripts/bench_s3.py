#!/usr/bin/env python3
"""Benchmark: nifuse over an S3 bucket vs nibabel + s3fs (+ indexed_gzip), on one s3s-fs server.

  .venv/bin/python scripts/bench_s3.py [--nifuse BIN] [--rounds 5] [--workdir DIR]

BIN defaults to /tmp/bench-target/release/nifuse (`CARGO_TARGET_DIR=/tmp/bench-target cargo
build --release`). Starts s3s-fs (scripts/setup-deps builds it) on a free loopback port,
uploads with s3fs the 96x96x64x60 int16 image of bench_gzip.py (cached in WORKDIR, default
/tmp/nifuse-bench-s3) as s3://bench/ds/bold.nii.gz (~47 MB) and bold.nii (70.8 MB), and a
BIDS-like prefix s3://bench/lsr of 1,000 objects (10 directories of 90 JSON sidecars and 10
small images). Every volume of both images is read once through a mount and checked against
the source bytes (outside timing); that pass saves the gzip index the later mounts reuse.
nifuse's bytes and requests come from .nifuse/stats; the baseline's from s3fs's range
fetches (S3File._fetch_range, counted in its process). Mounts use --cache-mode unchanged
(fill would fetch the whole object by design) unless a row says fill.

Rows (median over rounds; a random volume per round, nifuse and baseline interleaved):
  bytes/requests per volume   20 random volumes on one mount (stats deltas): .nii at most
                              the volume + 128 KiB in 1 request; .nii.gz with the saved
                              index at most 3 compressed volumes (object / 60)
  first pass of a .nii.gz     fresh mount, no index: one volume read (fill: and the cache
                              filled): bytes fetched / object size, goal at most 1.0
  one volume, new process     a new python process loads vol_K.nii from a new mount (saved
                              index) with nibabel vs a new process doing nibabel + s3fs
                              (+ indexed_gzip) dataobj[..., K] on the same server; time in
                              the process (load to array), goal >= 10x; bytes, goal <= 1/10
  ls -lR of 1,000 objects     fresh mount: ListObjectsV2 requests vs directory pages
                              (one each); s3fs find() in a new process for context
Exits 0 on MISS, 1 on errors (wrong bytes, a server or mount that does not come up).
"""
import argparse
import gzip
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (DEFAULT_NIFUSE, BenchError, fmt_time, median, mounted, print_table,
                          read_whole, verify_volumes, vol_name)
from bench_gzip import SHAPE, make_image

N_RANDOM = 20
WORKER_TIMEOUT = 300
VOL = SHAPE[0] * SHAPE[1] * SHAPE[2] * 2


# ---------------------------------------------------------------- the server
def s3s_binary():
    root = os.environ.get('NIFUSE_S3S_ROOT', os.path.expanduser('~/.cache/nifuse-ci/s3s-fs'))
    for d in [os.path.join(root, 'bin')] + os.environ.get('PATH', '').split(os.pathsep):
        if os.path.isfile(os.path.join(d, 's3s-fs')):
            return os.path.join(d, 's3s-fs')
    raise BenchError('s3s-fs is not installed: run scripts/setup-deps')


class Server:
    """s3s-fs serving a fresh directory on a free loopback port, anonymous."""

    def __init__(self, work):
        self.root = os.path.join(work, 's3root')
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(os.path.join(self.root, 'bench'))
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            self.port = s.getsockname()[1]
        self.endpoint = f'http://127.0.0.1:{self.port}'
        self.log = open(os.path.join(work, 's3s-fs.log'), 'w')
        self.proc = subprocess.Popen([s3s_binary(), '--host', '127.0.0.1', '--port', str(self.port),
                                      self.root], stdout=self.log, stderr=self.log)
        end = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(('127.0.0.1', self.port)) == 0:
                    break
            if self.proc.poll() is not None or time.monotonic() > end:
                raise BenchError(f's3s-fs did not start; see {self.log.name}')
            time.sleep(0.02)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def reused_connection_delay(port):
    """Seconds a second request on one keep-alive connection waits more than the first
    (s3s-fs does not set TCP_NODELAY: its reply waits for the client's delayed ACK)."""
    import http.client
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        c.request('GET', '/bench/ds/bold.nii', headers={'Range': 'bytes=0-1023'})
        c.getresponse().read()
        times.append(time.perf_counter() - t0)
    c.close()
    return median(times[1:]) - times[0]


def s3fs_client(endpoint):
    import s3fs
    return s3fs.S3FileSystem(anon=True, client_kwargs={'endpoint_url': endpoint})


# ---------------------------------------------------------------- new-process workers
COUNTING = r'''
import json, sys, time, hashlib
import numpy as np, nibabel as nib
import s3fs, s3fs.core
fetched = {"bytes": 0, "requests": 0}
_fetch = s3fs.core.S3File._fetch_range
def counted(self, start, end):
    data = _fetch(self, start, end)
    fetched["bytes"] += len(data); fetched["requests"] += 1
    return data
s3fs.core.S3File._fetch_range = counted
'''
BASELINE = COUNTING + r'''
import indexed_gzip
endpoint, key, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
fs = s3fs.S3FileSystem(anon=True, client_kwargs={"endpoint_url": endpoint})
f = fs.open(key, "rb")
fobj = indexed_gzip.IndexedGzipFile(fileobj=f, drop_handles=False) if key.endswith(".gz") else f
fh = nib.FileHolder(fileobj=fobj)
img = nib.Nifti1Image.from_file_map({"header": fh, "image": fh})
a = np.asarray(img.dataobj[..., k])
t = time.perf_counter() - t0
print(json.dumps({"t": t, "sha": hashlib.sha1(a.tobytes(order="F")).hexdigest(), **fetched}))
'''
NIFUSE = r'''
import json, sys, time, hashlib
import numpy as np, nibabel as nib
t0 = time.perf_counter()
a = np.asarray(nib.load(sys.argv[1]).dataobj)
t = time.perf_counter() - t0
print(json.dumps({"t": t, "sha": hashlib.sha1(a.tobytes(order="F")).hexdigest()}))
'''
FIND = COUNTING + r'''
t0 = time.perf_counter()
fs = s3fs.S3FileSystem(anon=True, client_kwargs={"endpoint_url": sys.argv[1]})
n = len(fs.find(sys.argv[2], detail=True))
print(json.dumps({"t": time.perf_counter() - t0, "objects": n}))
'''


def worker(code, *args):
    """Runs `code` in a new python process: (its JSON result, wall seconds)."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, '-c', code, *map(str, args)], capture_output=True,
                       text=True, timeout=WORKER_TIMEOUT)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise BenchError(f'worker failed: {p.stderr.strip()[-800:]}')
    return json.loads(p.stdout.strip().splitlines()[-1]), wall


# ---------------------------------------------------------------- nifuse measurements
class Bench:
    def __init__(self, args, server):
        self.nifuse = os.path.abspath(args.nifuse)
        self.work = os.path.abspath(args.workdir)
        self.server = server
        self.mnt = os.path.join(self.work, 'mnt')
        self.idx = os.path.join(self.work, 'idx_main')
        self.log = os.path.join(self.work, 'nifuse.log')
        self.n = SHAPE[3]

    def mount(self, prefix, index_dir, mode='unchanged'):
        return mounted(self.nifuse, f's3://bench/{prefix}', self.mnt, '--no-sign-request',
                       '--endpoint-url', self.server.endpoint, '--index-dir', index_dir,
                       '--cache-mode', mode, log_file=self.log)

    def vol(self, image, k):
        return os.path.join(self.mnt, image + '.d', vol_name(k, self.n))

    def stats(self):
        with open(os.path.join(self.mnt, '.nifuse', 'stats')) as f:
            return json.load(f)

    def fetched(self, image):
        row = next((r for r in self.stats()['images'] if r['path'] == image), None)
        return (row['fetched_bytes'], row['fetch_requests']) if row else (0, 0)

    def per_volume(self, image, ks):
        """Bytes and requests each volume read fetches, on one mount."""
        out = []
        with self.mount('ds', self.idx):
            os.stat(os.path.join(self.mnt, image + '.d'))
            for k in ks:
                b0, r0 = self.fetched(image)
                read_whole(self.vol(image, k))
                b1, r1 = self.fetched(image)
                out.append((b1 - b0, r1 - r0))
        return out

    def first_pass(self, mode):
        """Bytes fetched by a fresh mount without index to serve one volume (and fill the cache)."""
        fresh = os.path.join(self.work, f'idx_first_{mode}')
        shutil.rmtree(fresh, ignore_errors=True)
        os.makedirs(fresh)
        with self.mount('ds', fresh, mode):
            read_whole(self.vol('bold.nii.gz', self.n - 1))
            end = time.monotonic() + 120
            while mode == 'fill' and self.row('bold.nii.gz')['cache_state'] != 'full':
                if time.monotonic() > end:
                    raise BenchError('the fill did not complete within 120 s')
                time.sleep(0.05)
            return self.fetched('bold.nii.gz')[0]

    def row(self, image):
        return next(r for r in self.stats()['images'] if r['path'] == image)

    def new_process(self, image, k):
        """A new mount (saved index) and a new process reading volume k: (s, wall s, bytes, sha)."""
        with self.mount('ds', self.idx):
            out, wall = worker(NIFUSE, self.vol(image, k))
            return out['t'], wall, self.fetched(image)[0], out['sha']

    def ls_lr(self):
        with self.mount('lsr', os.path.join(self.work, 'idx_lsr')):
            t0 = time.perf_counter()
            subprocess.run(['ls', '-lR', self.mnt], stdout=subprocess.DEVNULL, check=True,
                           timeout=WORKER_TIMEOUT)
            t = time.perf_counter() - t0
            tot = self.stats()['totals']
            return t, tot['list_requests'], tot['fetch_requests'], tot['fetched_bytes']


# ---------------------------------------------------------------- setup
def prepare(b):
    """The image (cached), its upload and the 1,000-object prefix; every volume checked."""
    src = os.path.join(b.work, 'src')
    os.makedirs(src, exist_ok=True)
    gz_path = os.path.join(src, 'bold.nii.gz')
    if not os.path.exists(gz_path):
        print(f'generating {gz_path} ...', flush=True)
        make_image(gz_path)
    with open(gz_path, 'rb') as f:
        comp = f.read()
    raw = gzip.decompress(comp)
    import nibabel as nib
    off = int(nib.load(gz_path).dataobj.offset)
    fs = s3fs_client(b.server.endpoint)
    fs.pipe('bench/ds/bold.nii.gz', comp)
    fs.pipe('bench/ds/bold.nii', raw)
    tiny = nib.Nifti1Image(__import__('numpy').zeros((4, 4, 4, 2), 'int16'), None)
    tiny_bytes = tiny.to_bytes()
    objects = {}
    for s in range(10):
        for i in range(90):
            objects[f'bench/lsr/sub-{s:02d}/sub-{s:02d}_run-{i:02d}_bold.json'] = b'{"RepetitionTime": 2}'
        for i in range(10):
            objects[f'bench/lsr/sub-{s:02d}/sub-{s:02d}_run-{i:02d}_T1w.nii'] = tiny_bytes
    fs.pipe(objects)
    shutil.rmtree(b.idx, ignore_errors=True)
    os.makedirs(b.idx)
    expect = lambda k: raw[off + k * VOL: off + (k + 1) * VOL]
    with b.mount('ds', b.idx):
        for image in ('bold.nii', 'bold.nii.gz'):
            verify_volumes(os.path.join(b.mnt, image + '.d'), b.n, expect)
    shas = {k: hashlib.sha1(expect(k)).hexdigest() for k in range(b.n)}
    return len(comp), len(raw), shas


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nifuse', default=DEFAULT_NIFUSE)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--workdir', default='/tmp/nifuse-bench-s3')
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    server = Server(os.path.abspath(args.workdir))
    try:
        return run(Bench(args, server), args)
    finally:
        server.stop()


def run(b, args):
    comp_size, raw_size, shas = prepare(b)
    per_comp = comp_size / b.n
    print(f'bold.nii.gz {comp_size / 1e6:.1f} MB ({per_comp / 1e3:.0f} kB per compressed volume), '
          f'bold.nii {raw_size / 1e6:.1f} MB ({VOL / 1e6:.2f} MB per volume); all volumes of both '
          f'verified through an S3 mount; server {b.server.endpoint}')
    rng = random.Random(0)
    ks = rng.sample(range(1, b.n), N_RANDOM)
    rows, notes = [], []
    for image, limit, goal in (('bold.nii', VOL + (128 << 10), 'vol + 128 KiB, 1 req'),
                               ('bold.nii.gz', 3 * per_comp, '3 compr. vols')):
        got = b.per_volume(image, ks)
        byt, req = median([g[0] for g in got]), median([g[1] for g in got])
        worst = max(g[0] for g in got)
        ok = worst <= limit and (image.endswith('.gz') or max(g[1] for g in got) == 1)
        rows.append((f'bytes per volume, {image} ({N_RANDOM} vols)', f'{byt / 1e6:.3f} MB, {req:g} req',
                     f'max {worst / 1e6:.3f} MB', f'{worst / limit:.2f} of limit', goal,
                     'PASS' if ok else 'MISS'))
    for mode in ('unchanged', 'fill'):
        got = b.first_pass(mode)
        rows.append((f'first pass of bold.nii.gz ({mode})', f'{got / 1e6:.1f} MB',
                     f'object {comp_size / 1e6:.1f} MB', f'{got / comp_size:.2f}x', '<= 1.0x',
                     'PASS' if got <= comp_size else 'MISS'))
    r = {key: [] for key in ('gz_t', 'gz_w', 'gz_b', 'base_gz_t', 'base_gz_w', 'base_gz_b', 'base_gz_r',
                             'nii_t', 'nii_w', 'nii_b', 'base_nii_t', 'base_nii_w', 'base_nii_b',
                             'base_nii_r')}
    for rnd in range(args.rounds):
        k = rng.randrange(b.n)
        for image, pre in (('bold.nii.gz', 'gz'), ('bold.nii', 'nii')):
            t, wall, nbytes, sha = b.new_process(image, k)
            out, bwall = worker(BASELINE, b.server.endpoint, f'bench/ds/{image}', k)
            if sha != shas[k] or out['sha'] != shas[k]:
                raise BenchError(f'{image} volume {k}: wrong bytes (nifuse {sha == shas[k]}, '
                                 f'baseline {out["sha"] == shas[k]})')
            for key, v in ((f'{pre}_t', t), (f'{pre}_w', wall), (f'{pre}_b', nbytes),
                           (f'base_{pre}_t', out['t']), (f'base_{pre}_w', bwall),
                           (f'base_{pre}_b', out['bytes']), (f'base_{pre}_r', out['requests'])):
                r[key].append(v)
        print(f'round {rnd + 1}/{args.rounds}: volume {k}: .nii.gz {fmt_time(r["gz_t"][-1])} vs '
              f'{fmt_time(r["base_gz_t"][-1])}, .nii {fmt_time(r["nii_t"][-1])} vs '
              f'{fmt_time(r["base_nii_t"][-1])}', flush=True)
    m = {key: median(v) for key, v in r.items()}
    for pre, image in (('gz', 'bold.nii.gz'), ('nii', 'bold.nii')):
        ratio = m[f'base_{pre}_t'] / m[f'{pre}_t']
        rows.append((f'one volume, new process, {image}', fmt_time(m[f'{pre}_t']),
                     fmt_time(m[f'base_{pre}_t']), f'{ratio:.1f}x', '>= 10x',
                     'PASS' if ratio >= 10 else 'MISS'))
        share = m[f'{pre}_b'] / m[f'base_{pre}_b']
        rows.append((f'  bytes fetched for it, {image}', f'{m[f"{pre}_b"] / 1e6:.2f} MB',
                     f'{m[f"base_{pre}_b"] / 1e6:.1f} MB in {m[f"base_{pre}_r"]:g} req',
                     f'1/{1 / share:.0f}', '<= 1/10', 'PASS' if share <= 0.1 else 'MISS'))
        notes.append(f'{image}: whole-process wall time nifuse {fmt_time(m[f"{pre}_w"])} '
                     f'(mount already live), baseline {fmt_time(m[f"base_{pre}_w"])}')
    delay = reused_connection_delay(b.server.port)
    notes.append(f's3s-fs answers on a reused connection {delay * 1e3:.0f} ms later than on a new one '
                 f'(no TCP_NODELAY: its reply waits for the client\'s delayed ACK); nifuse keeps '
                 f'connections (as it must for TLS), so each of its requests after the first may '
                 f'pay this (the header GET, the GETs of a volume, 100 header GETs of ls -lR); '
                 f'the baseline makes one or two requests')
    t, lists, gets, got = b.ls_lr()
    out, _ = worker(FIND, b.server.endpoint, 'bench/lsr')
    rows.append(('ls -lR of 1,000 objects (11 dirs)', f'{fmt_time(t)}, {lists} lists',
                 f's3fs find {fmt_time(out["t"])}', f'{lists} / 11 pages', '1 per page',
                 'PASS' if lists == 11 else 'MISS'))
    notes.append(f'ls -lR also made {gets} GETs ({got / 1e3:.0f} kB): one 64 KiB header read per '
                 f'image (100), as the listing shows NAME.d only for files that parse as images')
    print_table(rows, f'nifuse S3 benchmark: medians of {args.rounds} rounds (s3s-fs on loopback; '
                      f'ratio = baseline / nifuse)')
    print('all rounds (s, bytes, requests):', json.dumps({key: [float(f'{x:.4g}') for x in v]
                                                          for key, v in r.items()}))
    print('\n'.join(f'note: {note}' for note in notes))
    return 0


if __name__ == '__main__':
    try:
        status = main()
    except BenchError as e:
        sys.exit(f'bench_s3: ERROR: {e}')
    sys.exit(status)
