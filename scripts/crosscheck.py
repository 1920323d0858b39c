#!/usr/bin/env python3
"""Independent-reader cross-check of nifuse against nibabel and nifti_tool.

  python scripts/crosscheck.py --nifuse target/debug/nifuse [--keep] [--mount-args='...']
  python scripts/crosscheck.py --mounted MNT --source SRC      # an existing (or fake) tree
  python scripts/crosscheck.py --mounted MNT --source SRC --object-store  # SRC's files as objects
(python = /opt/nifuse-venv/bin/python). Builds a source tree with make_images.py, runs
`nifuse mount SRC MNT` (and always `nifuse umount MNT`) and checks: the mirror (names plus
NAME.d for images only, plain files byte-identical, sizes, modes minus write bits, mtimes,
symlinks, SOURCE unchanged); for each image nibabel loads as NIfTI-1/2 (others: no .d) the
exact vol_K.nii names; for each volume (~200 sampled above 2000), in random order: the raw
header (dim, other fields byte-equal, intent 2001 -> 0, magic, vox_offset % 16, extensions
minus AFNI ecode 4), voxel bytes, st_size, pread; via nibabel: class, dtype with byte order,
shape, affine, q/sform codes, zooms, scl_slope/inter, dataobj == src.dataobj[..., K] (5D+: K
unravelled over dims 4..7, Fortran order); truncated sources: EIO exactly for incomplete
volumes; `nifti_tool -check_hdr/-check_nim` "IS GOOD" for NIfTI-1 volumes (all if <= 50).
Each operation is bounded (60 s; the run by --total-timeout): on a hang a watchdog aborts the
FUSE connection. Prints one line per failed check (at most --show per image and kind), then
`crosscheck: N passed, M failed`; exits 1 on any failure or when nothing was checked.
"""
import argparse, collections, errno, hashlib, io, logging, os, stat, subprocess
import sys, tempfile, threading, time, traceback, warnings, zlib

import numpy as np
import nibabel as nib

import crosscheck_views
from nifti_raw import parse_header

HERE = os.path.dirname(os.path.abspath(__file__))
OP_TIMEOUT = 60
GZ_MARGIN = 1 << 15  # decoded bytes near a truncated gzip's end that may fail
UNLISTED = set('sizeof_hdr data_type db_name extents session_error regular intent_p1 intent_p2 '
               'intent_p3 intent_name toffset glmax glmin eol_check unused_str'.split())
FORMATS = {1: (348, nib.nifti1.header_dtype, nib.Nifti1Image, nib.Nifti1Pair),
           2: (540, nib.nifti2.header_dtype, nib.Nifti2Image, nib.Nifti2Pair)}
logging.getLogger('nibabel').setLevel(logging.CRITICAL)
warnings.filterwarnings('ignore')

class Report:
    """Counts checks; prints failed ones (capped per image and kind)."""

    def __init__(self, show):
        self.passed = self.failed = 0
        self.show, self.seen = show, collections.Counter()

    def check(self, ok, where, what, expected=None, got=None):
        if ok:
            self.passed += 1
            return True
        self.failed += 1
        key = (where.split(' vol ')[0], what)
        self.seen[key] += 1
        if self.show is None or self.seen[key] <= self.show:
            print(f'FAIL {where}: {what}: expected {short(expected)}, got {short(got)}', flush=True)
        return False

    def eq(self, where, what, want, got):
        return self.check(bool(want == got), where, what, want, got)

def short(v, n=160):
    s = repr(v.tolist() if isinstance(v, (np.ndarray, np.generic)) else v)
    return s if len(s) <= n else s[:n] + '...'

def md5(b):
    return hashlib.md5(b).hexdigest()

def read_file(path):
    with open(path, 'rb') as f:
        return f.read()

class Watchdog(threading.Thread):
    """Aborts the FUSE connection if one operation or the whole run overruns."""

    def __init__(self, mnt, total):
        super().__init__(daemon=True)
        self.mnt, self.end = mnt, time.monotonic() + total
        self.what, self.deadline, self.fired, self.stopped = 'start', None, None, False
        self.start()

    def op(self, what):
        if self.fired:
            raise TimeoutError(self.fired)
        self.what, self.deadline = what, time.monotonic() + OP_TIMEOUT + 30

    def run(self):
        while not self.stopped and not self.fired:
            time.sleep(0.5)
            now = time.monotonic()
            if now > self.end or (self.deadline and now > self.deadline):
                self.fired = f'timed out during {self.what}'
                print(f'crosscheck: {self.fired}; aborting the FUSE connection', flush=True)
                abort_mount(self.mnt)

def gunzip_partial(raw):
    """(bytes, complete) for (multi-member) gzip data, tolerating truncation."""
    if raw[:2] != b'\x1f\x8b':
        return raw, True
    out = []
    while raw[:2] == b'\x1f\x8b':
        d = zlib.decompressobj(31)
        try:
            out.append(d.decompress(raw))
        except zlib.error:
            d.eof = False
        if not d.eof:
            return b''.join(out), False
        raw = d.unused_data
    return b''.join(out), True

class Source:
    """One source image: raw header, raw (decompressed) data, nibabel image."""

    def __init__(self, root, rel):
        self.rel, self.path = rel, os.path.join(root, rel)
        self.single = not rel.endswith('.hdr')
        img = self.path[:-4] + '.img'
        img = self.path if self.single else img if os.path.exists(img) else img + '.gz'
        if not os.path.exists(img):
            raise ValueError('header without .img')
        raw, self.complete = gunzip_partial(read_file(img))
        self.h = parse_header(raw if self.single else read_file(self.path), self.single)
        if self.h is None:
            raise ValueError('not a NIfTI header')
        self.data, rec = raw[self.h['vox']:], self.h['rec']
        if int(rec['datatype']) == 1 or int(rec['bitpix']) % 8:
            raise ValueError('datatype without whole bytes per voxel')
        dims = [int(d) for d in rec['dim'][1:int(rec['dim'][0]) + 1]]
        self.spatial, self.extra = tuple((dims + [1, 1, 1])[:3]), tuple(dims[3:])
        self.nvols = int(np.prod(self.extra)) if self.extra else 1
        self.volbytes = int(np.prod(self.spatial)) * int(rec['bitpix']) // 8
        self.avail = len(self.data)
        self.certain = self.avail if self.complete else max(0, self.avail - GZ_MARGIN)
        self.nib, self._arr = self.load_nibabel(raw), None

    def load_nibabel(self, raw):
        cls = FORMATS[self.h['fmt']][2 if self.single else 3]
        if not self.single and not os.path.exists(self.path[:-4] + '.img'):
            fmap = cls.make_file_map()  # NAME.hdr + NAME.img.gz
            fmap['header'].filename, fmap['image'].fileobj = self.path, io.BytesIO(raw)
            return cls.from_file_map(fmap)
        try:
            return cls.from_filename(self.path)
        except Exception:
            if not self.single:
                raise
        return cls.from_bytes(raw)  # e.g. gzip data under a .nii name

    def names(self):
        width = max(4, len(str(self.nvols - 1)))
        return [f'vol_{k:0{width}d}.nii' for k in range(self.nvols)]

    def volume_state(self, k):
        """'ok' (must read), 'eio' (must fail) or 'either' (truncated gzip)."""
        end = (k + 1) * self.volbytes
        return 'ok' if end <= self.certain else 'eio' if end > self.avail else 'either'

    def nib_volume(self, k):
        """What nibabel gives for volume k: np.asanyarray(dataobj[..., idx])."""
        idx = (Ellipsis,) + tuple(int(i) for i in np.unravel_index(k, self.extra, order='F'))
        if self.certain < self.nvols * self.volbytes:  # truncated: only this volume
            return np.asanyarray(self.nib.dataobj[idx])
        if self._arr is None:
            self._arr = np.asanyarray(self.nib.dataobj)
        return self._arr[idx]

def discover(root):
    """(images {rel: Source}, rejected {rel: reason}) for NIfTI-like names."""
    images, rejected = {}, {}
    for dirpath, dirs, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), root)
            if not f.endswith(('.nii', '.nii.gz', '.hdr')) or os.path.islink(dirpath + '/' + f):
                continue
            try:
                images[rel] = Source(root, rel)
            except Exception as e:
                rejected[rel] = f'{type(e).__name__}: {e}'
    return images, rejected

def nan_equal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and \
        np.array_equal(a, b, equal_nan=a.dtype.kind in 'fc')

def check_raw_volume(rep, src, k, where, content, st):
    """Header, extensions and voxel bytes of one volume, parsed by hand."""
    rec, fmt = src.h['rec'], src.h['fmt']
    rep.eq(where, 'bytes read vs st_size', st.st_size, len(content))
    v = parse_header(content, True)
    if not (rep.check(v is not None, where, 'volume header is NIfTI', fmt, None)
            and rep.check(v['fmt'] == fmt, where, 'NIfTI version', fmt, v['fmt'])
            and rep.check(v['end'] == src.h['end'], where, 'byte order', src.h['end'], v['end'])):
        return None
    rep.eq(where, 'magic', b'n+%d' % fmt, v['magic'])
    rep.eq(where, 'dim', [3, *src.spatial, 1, 1, 1, 1], v['rec']['dim'].tolist())
    for name in rec.dtype.names:
        if name in ('dim', 'vox_offset', 'magic'):
            continue
        want = rec[name]
        if name == 'intent_code' and int(want) == 2001:
            want = np.zeros((), rec.dtype[name])
        tag = ' (field not named in SPEC 3)' if name in UNLISTED else ''
        rep.check(np.asarray(want).tobytes() == np.asarray(v['rec'][name]).tobytes(), where,
                  f'header field {name}{tag}', want, v['rec'][name])
    vox = v['vox']
    rep.eq(where, 'vox_offset % 16', 0, vox % 16)
    rep.check(v['ext_end'] <= vox, where, 'vox_offset after extensions', v['ext_end'], vox)
    want_exts = [e for e in src.h['exts'] if e[0] != 4]
    rep.check(v['exts'] == want_exts, where, 'extensions (ecode, size) byte-equal',
              [(c, len(b)) for c, b in want_exts], [(c, len(b)) for c, b in v['exts']])
    rep.eq(where, 'st_size == vox_offset + volume bytes', vox + src.volbytes, st.st_size)
    want, got = src.data[k * src.volbytes:(k + 1) * src.volbytes], content[vox:]
    rep.check(got == want, where, 'voxel bytes equal source bytes',
              f'{len(want)} bytes md5 {md5(want)}', f'{len(got)} bytes md5 {md5(got)}')
    return v

def check_pread(rep, path, where, content):
    """Reads at odd offsets and lengths match the whole-file read."""
    n = len(content)
    with open(path, 'rb', buffering=0) as f:
        for off, size in ((0, 1), (347, 9), (n // 2 - 7, 13), (n - 5, 100), (n + 4096, 10)):
            rep.eq(where, f'pread({size} @ {off})', content[off:off + size],
                   os.pread(f.fileno(), size, off))

def check_nibabel_volume(rep, src, k, where, path):
    """What nibabel makes of vol_K.nii against what it makes of the source."""
    cls = FORMATS[src.h['fmt']][2]
    try:
        vol, loaded = cls.from_filename(path), type(nib.load(path))
    except Exception as e:
        return rep.check(False, where, f'nibabel loads as {cls.__name__}', 'loads', repr(e))
    rep.check(loaded in (cls, nib.Cifti2Image), where, 'nib.load class', cls, loaded)
    s, h = src.nib, vol.header
    rep.eq(where, 'get_data_dtype()', s.get_data_dtype(), vol.get_data_dtype())
    rep.eq(where, 'shape', src.spatial, vol.shape)
    rep.check(np.array_equal(vol.affine, s.affine), where, 'affine', s.affine, vol.affine)
    for f in ('qform_code', 'sform_code', 'scl_slope', 'scl_inter'):
        rep.check(nan_equal(h[f], s.header[f]), where, f, s.header[f], h[f])
    zooms = tuple(map(float, (tuple(s.header.get_zooms()) + (1.0, 1.0, 1.0))[:3]))
    rep.eq(where, 'zooms', zooms, tuple(map(float, h.get_zooms())))
    intent = int(s.header['intent_code'])
    rep.eq(where, 'intent_code', 0 if intent == 2001 else intent, int(h['intent_code']))
    want_ext = [(e.get_code(), e.content) for e in s.header.extensions if e.get_code() != 4]
    got_ext = [(e.get_code(), e.content) for e in h.extensions]
    rep.check(got_ext == want_ext, where, 'nibabel extensions', want_ext, got_ext)
    try:
        want, got = src.nib_volume(k), np.asanyarray(vol.dataobj)
        rep.check(nan_equal(got, want), where, 'dataobj equals src.dataobj[..., K]',
                  f'{want.dtype}{want.shape}', f'{got.dtype}{got.shape}'
                  + (' values differ' if got.shape == want.shape else ''))
    except Exception as e:
        rep.check(False, where, 'dataobj readable', 'array', repr(e))

def nifti_tool_check(rep, where, path):
    for opt, word in (('-check_hdr', 'header IS GOOD'), ('-check_nim', 'nifti_image IS GOOD')):
        try:
            p = subprocess.run(['nifti_tool', opt, '-infiles', path], capture_output=True,
                               text=True, timeout=OP_TIMEOUT)
            out = (p.stdout + p.stderr).strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            out = repr(e)
        rep.check(word in out, where, f'nifti_tool {opt}', word, out.replace('\n', ' | '))

def sample(n, count, seed):
    """count indices out of range(n), evenly spread plus random, first and last."""
    if n <= count:
        return list(range(n))
    extra = min(20, count // 2)
    picks = set(np.linspace(0, n - 1, count - extra).astype(int).tolist())
    rng = np.random.default_rng(seed)
    return sorted(picks | set(rng.choice(n, extra, replace=False).tolist()) | {0, n - 1})

def check_image(rep, wd, src, mnt):
    """The NAME.d listing and every (sampled) volume of one source image."""
    dpath = os.path.join(mnt, src.rel + '.d')
    wd.op(f'listing {dpath}')
    try:
        got = os.listdir(dpath)
    except OSError as e:
        return rep.check(False, src.rel, 'NAME.d lists', f'{src.nvols} volumes', repr(e))
    names = src.names()
    vols = {n for n in got if n.startswith('vol_') and n.endswith('.nii')}
    missing, extra = sorted(set(names) - vols), sorted(vols - set(names))
    rep.check(not missing and not extra and len(vols) == len(names), src.rel + '.d',
              'volume names', f'{len(names)} names {names[0]}..{names[-1]}',
              f'{len(got)} names, missing {missing[:3]} extra {extra[:3]}')
    tool_ks = set(sample(src.nvols, 10 if src.nvols > 50 else src.nvols, 7))
    seed = zlib.crc32(src.rel.encode())  # random order: exercises random access
    for k in np.random.default_rng(seed).permutation(
            sample(src.nvols, 200 if src.nvols > 2000 else src.nvols, seed)).tolist():
        path, where = os.path.join(dpath, names[k]), f'{src.rel} vol {k}'
        state = src.volume_state(k)
        wd.op(f'reading {path}')
        try:
            st = os.stat(path)
        except OSError as e:
            rep.check(False, where, 'stat', 'success', f'{e.strerror} ({e.errno})')
            continue
        rep.check(stat.S_ISREG(st.st_mode) and not st.st_mode & 0o222, where,
                  'regular file without write bits', 'mode r--', oct(st.st_mode))
        try:
            content = read_file(path)
        except OSError as e:
            rep.check(state != 'ok' and e.errno == errno.EIO, where, 'read',
                      'EIO' if state != 'ok' else 'success', f'{e.strerror} ({e.errno})')
            continue
        if rep.check(state != 'eio', where, 'read of a missing (truncated) volume', 'EIO',
                     f'{len(content)} bytes'):
            v = check_raw_volume(rep, src, k, where, content, st)
            check_pread(rep, path, where, content)
            check_nibabel_volume(rep, src, k, where, path)
            if v is not None and v['fmt'] == 1 and k in tool_ks:
                nifti_tool_check(rep, where, path)
    crosscheck_views.check_views(rep, wd, src, mnt)

# --- --object-store: MNT shows the regular files of SOURCE uploaded as objects
# (s3://BUCKET/PREFIX). The mirror differs in these checks only: no symlinks, no
# empty directories, files 0444 and directories 0555 owned by the mounting user,
# no source mtimes (an object's is its upload time).
OBJECT_STORE = False

def regular(path):
    return os.path.isfile(path) and not os.path.islink(path)

def holds_objects(path):
    """Whether a directory has a regular file somewhere below (keys make directories)."""
    return any(regular(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)

def object_store_names(dirpath, dirs, files):
    """A directory's entries as an object store shows them."""
    return ([d for d in dirs if not os.path.islink(os.path.join(dirpath, d))
             and holds_objects(os.path.join(dirpath, d))]
            + [f for f in files if regular(os.path.join(dirpath, f))])

def check_object_entry(rep, where, p, q):
    """An object (0444) or a common prefix (0555), owned by the mounting user."""
    try:
        a, b = os.lstat(p), os.lstat(q)
    except OSError as e:
        return rep.check(False, where, 'lstat in mount', 'exists', repr(e))
    kind, mode = (stat.S_IFDIR, 0o555) if stat.S_ISDIR(a.st_mode) else (stat.S_IFREG, 0o444)
    rep.eq(where, 'object-store type and mode', (oct(kind), oct(mode)),
           (oct(stat.S_IFMT(b.st_mode)), oct(stat.S_IMODE(b.st_mode))))
    rep.eq(where, 'owner is the mounting user', (os.getuid(), os.getgid()), (b.st_uid, b.st_gid))
    check_content(rep, where, a, b, p, q)
# --- end of --object-store

def check_tree(rep, wd, src_root, mnt, images, rejected):
    """Mirror of directories, plain files and symlinks; .d only for images."""
    for dirpath, dirs, files in os.walk(src_root):
        rel = os.path.relpath(dirpath, src_root)
        mdir = os.path.normpath(os.path.join(mnt, rel))
        if OBJECT_STORE and rel != '.' and not holds_objects(dirpath):
            continue
        names = object_store_names(dirpath, dirs, files) if OBJECT_STORE else dirs + files
        wd.op(f'listing {mdir}')
        want = set(names) | {f + '.d' for f in files
                             if os.path.normpath(os.path.join(rel, f)) in images}
        try:
            got = set(os.listdir(mdir)) - ({'.nifuse'} if rel == '.' else set())
        except OSError as e:
            rep.check(False, rel, 'directory lists', sorted(want), repr(e))
            continue
        rep.check(got == want, rel, 'directory listing (missing, extra)', sorted(want - got),
                  sorted(got - want))
        for name in names:
            p, q = os.path.join(dirpath, name), os.path.join(mdir, name)
            where = os.path.normpath(os.path.join(rel, name))
            wd.op(f'stat/read {q}')
            (check_object_entry if OBJECT_STORE else check_entry)(rep, where, p, q)
            if where in rejected:
                rep.check(not os.path.lexists(q + '.d'), where,
                          f'no .d for a non-image ({rejected[where]})', 'ENOENT', 'exists')

def check_entry(rep, where, p, q):
    try:
        a, b = os.lstat(p), os.lstat(q)
    except OSError as e:
        return rep.check(False, where, 'lstat in mount', 'exists', repr(e))
    rep.eq(where, 'file type', oct(stat.S_IFMT(a.st_mode)), oct(stat.S_IFMT(b.st_mode)))
    if stat.S_ISLNK(a.st_mode):
        return rep.eq(where, 'symlink target', os.readlink(p),
                      os.readlink(q) if stat.S_ISLNK(b.st_mode) else None)
    rep.eq(where, 'mode minus write bits', oct(stat.S_IMODE(a.st_mode) & ~0o222),
           oct(stat.S_IMODE(b.st_mode)))
    rep.eq(where, 'mtime', a.st_mtime_ns, b.st_mtime_ns)
    check_content(rep, where, a, b, p, q)

def check_content(rep, where, a, b, p, q):
    """Size and bytes of a regular file (lstat a of p in SOURCE, b of q in the mount)."""
    if stat.S_ISREG(a.st_mode):
        rep.eq(where, 'size', a.st_size, b.st_size)
        try:
            rep.check(read_file(p) == read_file(q), where, 'content byte-identical to source',
                      'identical', 'differs')
        except OSError as e:
            rep.check(False, where, 'read through mount', 'content', repr(e))

def run_checks(rep, wd, src_root, mnt):
    """All checks of a mounted tree; an exception or timeout is one failed check."""
    try:
        wd.op('discovering source images')
        images, rejected = discover(src_root)
        print(f'crosscheck: {len(images)} images, {sum(s.nvols for s in images.values())} '
              f'volumes; {len(rejected)} NIfTI-named non-images', flush=True)
        check_tree(rep, wd, src_root, mnt, images, rejected)
        for rel in sorted(images):
            check_image(rep, wd, images[rel], mnt)
    except Exception as e:
        traceback.print_exc()
        rep.check(False, 'run', 'checks ran to the end', 'no exception', repr(e))

def mount_info(mnt):
    """'major:minor' of the mount at mnt, or None when nothing is mounted there."""
    mnt = os.path.abspath(mnt)  # no stat: it could hang on a stuck mount
    with open('/proc/self/mountinfo') as f:
        for fields in (line.split() for line in f):
            if fields[4].encode().decode('unicode_escape') == mnt:
                return fields[2]
    return None

def abort_mount(mnt):
    """Abort a hung FUSE connection (fails all its requests), then detach it."""
    dev, ctl = mount_info(mnt) if mnt else None, '/sys/fs/fuse/connections'
    if dev:
        if os.path.isdir(ctl) and not os.listdir(ctl):
            subprocess.run(['mount', '-t', 'fusectl', 'none', ctl], capture_output=True,
                           timeout=OP_TIMEOUT)
        if os.path.exists(f'{ctl}/{dev.split(":")[1]}/abort'):
            with open(f'{ctl}/{dev.split(":")[1]}/abort', 'w') as f:
                f.write('1')
        subprocess.run(['umount', '-l', mnt], capture_output=True, timeout=OP_TIMEOUT)

def run_cmd(argv, logdir, tag):
    """Run with output to a file (a daemon holding a pipe open can't hang us)."""
    with open(os.path.join(logdir, tag + '.out'), 'w+') as out:
        try:
            rc = subprocess.run(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                timeout=OP_TIMEOUT).returncode
        except subprocess.TimeoutExpired:
            rc = f'timeout after {OP_TIMEOUT}s'
        except OSError as e:
            rc = repr(e)
        out.seek(0)
        return rc, out.read()[-2000:].strip()

def snapshot(root):
    """Everything about SOURCE that nifuse must not change."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for p in (os.path.join(dirpath, name) for name in dirs + files):
            st = os.lstat(p)
            digest = md5(read_file(p)) if stat.S_ISREG(st.st_mode) else ''
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out

def run_with_mount(rep, args):
    """make_images.py, nifuse mount, all checks, nifuse umount (always)."""
    binary = os.path.abspath(args.nifuse)
    tmp = tempfile.mkdtemp(prefix='nifuse-crosscheck-')
    src, mnt = os.path.join(tmp, 'src'), os.path.join(tmp, 'mnt')
    os.makedirs(mnt)
    subprocess.run([sys.executable, os.path.join(HERE, 'make_images.py'), src], check=True,
                   timeout=300)
    before, wd = snapshot(src), Watchdog(mnt, args.total_timeout)
    try:
        wd.op('nifuse mount')
        rc, out = run_cmd([binary, 'mount', *args.mount_args.split(), src, mnt], tmp, 'mount')
        live = mount_info(mnt) is not None
        if rep.check(rc == 0 and live, 'mount', '`nifuse mount SRC MNT` returns 0, live',
                     'rc 0, live', f'rc {rc}, live {live}, output {out!r}'):
            run_checks(rep, wd, src, mnt)
    finally:
        wd.stopped = True
        if mount_info(mnt) is not None:
            rc, out = run_cmd([binary, 'umount', mnt], tmp, 'umount')
            gone = mount_info(mnt) is None
            rep.check(rc == 0 and gone, 'umount', '`nifuse umount MNT` returns 0, unmounts',
                      'rc 0, unmounted', f'rc {rc}, unmounted {gone}, output {out!r}')
            if not gone:
                abort_mount(mnt)
    after = snapshot(src)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    rep.check(not changed, 'source', 'SOURCE left unchanged', [], changed[:5])
    if args.keep or mount_info(mnt) is not None:
        print(f'crosscheck: kept {tmp} (source in src/, command output in *.out)')
    else:
        subprocess.run(['rm', '-rf', '--one-file-system', tmp], timeout=OP_TIMEOUT)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nifuse', help='path to the nifuse binary')
    ap.add_argument('--keep', action='store_true', help='keep the temporary directory')
    ap.add_argument('--mount-args', default='', help='extra options for nifuse mount')
    ap.add_argument('--mounted', help='check this already-mounted (or fake) tree')
    ap.add_argument('--source', help='the source directory of --mounted')
    ap.add_argument('--object-store', action='store_true', help='--mounted shows the regular '
                    'files of --source as objects of a bucket (s3://...)')
    ap.add_argument('--total-timeout', type=float, default=1800, help='seconds')
    ap.add_argument('--show', type=int, default=10, help='failures printed per image and kind '
                    '(0: all)')
    args = ap.parse_args()
    if not args.nifuse and not (args.mounted and args.source):
        ap.error('give --nifuse BINARY, or --mounted DIR --source DIR')
    global OBJECT_STORE
    OBJECT_STORE = args.object_store
    rep = Report(args.show or None)
    if args.nifuse:
        run_with_mount(rep, args)
    else:
        run_checks(rep, Watchdog(args.mounted, args.total_timeout), args.source, args.mounted)
    print(f'crosscheck: {rep.passed} passed, {rep.failed} failed')
    sys.exit(1 if rep.failed or not rep.passed else 0)


if __name__ == '__main__':
    main()
