"""The views of NAME.d/ checked with nibabel (part of crosscheck.py).

For each source image: the listing (volumes, STEM.nii, x/ y/ z/, float32/ float64/ unless
complex or RGB; ranges never listed), and for a sample of views, loaded with nibabel:

  STEM.nii            every header field but vox_offset/magic, every extension (AFNI too),
                      dataobj == the source's whole dataobj
  vols_A-B[_stepS]    shape (x, y, z, count), zooms[3] = pixdim[4] * S, toffset + A * TR,
                      intent (0 for 5D+ sources), no AFNI extension, affine, dataobj ==
                      the source's volumes A:B+1:S over dims 4.. flattened (Fortran order)
  x/ y/ z/ slices     shape with that dim 1, dataobj == the source sliced there, qform and
                      sform == the source's moved to the slice (img.slicer's affine), other
                      fields copied
  float32/ float64/   the same files with dataobj == get_fdata(dtype) of that selection,
                      byte order kept, datatype 16/64, scl_slope 1, scl_inter 0

nifti_tool -check_hdr/-check_nim (NIfTI-1) and mrinfo must accept a sample of them.
Views of truncated sources are only stat-ed (their complete parts are tested in Rust).
"""
import os
import shutil
import subprocess

import numpy as np
import nibabel as nib

from nifti_raw import parse_header

NO_FLOAT = ('c', 'V')  # complex, RGB(A): no float views
TOOL_LIMIT = 8  # views per image given to nifti_tool and mrinfo


def stem_of(rel):
    name = os.path.basename(rel)
    for ext in ('.nii.gz', '.hdr.gz', '.nii', '.hdr'):
        if name.lower().endswith(ext) and len(name) > len(ext):
            return name[:-len(ext)]
    return name


def has_floats(src):
    return src.nib.get_data_dtype().kind not in NO_FLOAT


def whole_array(src):
    if src._arr is None:
        src._arr = np.asanyarray(src.nib.dataobj)
    return src._arr


def flat(src, arr):
    """arr with dims 4.. flattened into one (Fortran order), as nifuse counts volumes."""
    return arr.reshape(src.spatial + (src.nvols,), order='F')


def expected_fdata(src, dtype):
    """get_fdata(dtype) of the whole source, computed once per dtype."""
    cache = src.__dict__.setdefault('_fdata', {})
    if dtype not in cache:
        cache[dtype] = np.asanyarray(src.nib.get_fdata(dtype=dtype))
    return cache[dtype]


def view_names(src):
    names = set(src.names()) | {'x', 'y', 'z', stem_of(src.rel) + '.nii'}
    if has_floats(src):
        names |= {'float32', 'float64'}
    return names


def check_listing(rep, wd, src, mnt):
    dpath = os.path.join(mnt, src.rel + '.d')
    wd.op(f'listing {dpath}')
    try:
        got = set(os.listdir(dpath))
    except OSError as e:
        return rep.check(False, src.rel, 'NAME.d lists', 'names', repr(e))
    want = view_names(src)
    if stem_of(src.rel) + '.nii' in src.names():
        want.discard(stem_of(src.rel) + '.nii')
    rep.check(got == want, src.rel + '.d', 'NAME.d listing (missing, extra)',
              sorted(want - got)[:4], sorted(got - want)[:4])
    for axis, n in zip('xyz', src.spatial):
        sub = os.path.join(dpath, axis)
        width = max(4, len(str(n - 1)))
        want = {f'slice_{i:0{width}d}.nii' for i in range(n)}
        try:
            got = set(os.listdir(sub))
        except OSError as e:
            rep.check(False, src.rel, f'{axis}/ lists', 'names', repr(e))
            continue
        rep.check(got == want, src.rel + f'.d/{axis}', 'slice names', len(want), len(got))


def load(rep, where, path, cls):
    try:
        return cls.from_filename(path)
    except Exception as e:
        rep.check(False, where, f'nibabel loads as {cls.__name__}', 'loads', repr(e))
        return None


def field_equal(a, b):
    return np.asarray(a).tobytes() == np.asarray(b).tobytes()


def raw_header(path):
    """The view's header record as stored (nibabel's loaded headers reset the scale factors)."""
    with open(path, 'rb') as f:
        head = f.read(1 << 16)
    parsed = parse_header(head, True)
    return None if parsed is None else parsed['rec']


def check_fields(rep, where, src, path, changed, float_code=None):
    """Every header field of the view equals the source's except those in `changed`."""
    s, h = src.h['rec'], raw_header(path)
    if not rep.check(h is not None, where, 'view header parses', 'NIfTI', None):
        return
    skip = {'vox_offset', 'magic', *changed}
    if float_code:
        skip |= {'datatype', 'bitpix', 'scl_slope', 'scl_inter'}
        rep.eq(where, 'datatype', float_code, int(h['datatype']))
        rep.eq(where, 'bitpix', 32 if float_code == 16 else 64, int(h['bitpix']))
        rep.eq(where, 'scl_slope/inter', (1.0, 0.0), (float(h['scl_slope']), float(h['scl_inter'])))
    for name in s.dtype.names:
        if name not in skip:
            rep.check(field_equal(s[name], h[name]), where, f'header field {name}', s[name], h[name])


def extensions(header, keep_afni):
    return [(e.get_code(), e.content) for e in header.extensions
            if keep_afni or e.get_code() != 4]


def check_data(rep, where, vol, want):
    """Values equal (NaN where NaN), whatever the byte order; dtypes are checked by the caller."""
    got = np.asanyarray(vol.dataobj)
    same = got.dtype.newbyteorder('=') == want.dtype.newbyteorder('=') and \
        got.shape == want.shape and np.array_equal(got, want, equal_nan=want.dtype.kind in 'fc')
    rep.check(same, where, 'data', f'{want.dtype}{want.shape}', f'{got.dtype}{got.shape}'
              + (' values differ' if got.shape == want.shape else ''))


def run_tool(argv):
    """(exit status 0, output) of a command."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return p.returncode == 0, (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, repr(e)


def mrinfo_reads_source(src):
    """Whether MRtrix3 reads the source itself (it has no RGB and, in 3.0.4, no NIfTI-2 .nii)."""
    if '_mrinfo' not in src.__dict__:
        src._mrinfo = bool(shutil.which('mrinfo')) and run_tool(['mrinfo', '-size', src.path])[0]
    return src._mrinfo


def tools(rep, where, src, path, budget):
    """nifti_tool (NIfTI-1) and mrinfo (where it reads the source) accept the file;
    `budget` counts the runs left for this image."""
    if budget[0] <= 0:
        return
    budget[0] -= 1
    checks = []
    if src.h['fmt'] == 1:
        checks += [(['nifti_tool', '-check_hdr', '-infiles', path], 'header IS GOOD'),
                   (['nifti_tool', '-check_nim', '-infiles', path], 'nifti_image IS GOOD')]
    if mrinfo_reads_source(src):
        checks.append((['mrinfo', '-size', path], None))
    for argv, word in checks:
        ok, out = run_tool(argv)
        rep.check(ok and (word is None or word in out), where, ' '.join(argv[:2]),
                  word or 'exit 0', out.replace('\n', ' | ')[:200])


def selections(src):
    """(relative name, kind, parameters) of the views to check in one directory."""
    n, width = src.nvols, max(4, len(str(src.nvols - 1)))
    out = [(stem_of(src.rel) + '.nii', 'whole', None)]
    ranges = {(0, n - 1, 1), (n - 1, n - 1, 1), (n // 3, n - 1, 2), (0, max(0, n - 2), 3)}
    for a, b, s in sorted(ranges):
        suffix = '' if s == 1 else f'_step{s}'
        out.append((f'vols_{a:0{width}d}-{b:0{width}d}{suffix}.nii', 'range', (a, b, s)))
    for axis, size in enumerate(src.spatial):
        w = max(4, len(str(size - 1)))
        for i in sorted({0, size // 2, size - 1}):
            out.append((f'{"xyz"[axis]}/slice_{i:0{w}d}.nii', 'slice', (axis, i)))
    return out


def expected(src, kind, params, arr):
    """The data a view must hold, from the source's array `arr` (stored or float)."""
    if kind == 'whole':
        return arr
    if kind == 'range':
        a, b, s = params
        return flat(src, arr)[..., a:b + 1:s]
    axis, i = params
    index = [slice(None)] * arr.ndim
    index[axis] = slice(i, i + 1)
    return arr[tuple(index)]


def check_affine(rep, where, src, vol, kind, params):
    s = src.nib
    if kind != 'slice':
        return rep.check(np.allclose(vol.affine, s.affine, atol=1e-6), where, 'affine',
                         s.affine, vol.affine)
    axis, i = params
    move = np.eye(4)
    move[axis, 3] = i
    for code, get in (('qform_code', 'get_qform'), ('sform_code', 'get_sform')):
        if int(s.header[code]) == 0:
            continue
        try:
            want = getattr(s.header, get)() @ move
        except Exception:
            continue  # a qform nibabel refuses (negative zooms) has no affine to compare
        got = getattr(vol.header, get)()
        tol = 1e-6 * max(1.0, float(np.abs(want).max()))
        rep.check(np.allclose(got, want, rtol=1e-6, atol=tol), where,
                  f'{get}() moved to the slice', want, got)


def check_view(rep, wd, src, mnt, dirname, name, kind, params, output, budget):
    path = os.path.join(mnt, src.rel + '.d', dirname, name)
    where = f'{src.rel} {dirname}{name}'
    wd.op(f'reading {path}')
    cls = nib.Nifti1Image if src.h['fmt'] == 1 else nib.Nifti2Image
    try:
        st = os.stat(path)
    except OSError as e:
        return rep.check(False, where, 'stat', 'exists', repr(e))
    if src.certain < src.nvols * src.volbytes:
        return  # truncated source: only the stat above
    vol = load(rep, where, path, cls)
    if vol is None:
        return
    rep.eq(where, 'st_size', st.st_size, os.path.getsize(path))
    if output is None:
        rep.eq(where, 'dtype (byte order kept)', src.nib.get_data_dtype(), vol.get_data_dtype())
        arr = whole_array(src)
    else:
        want_dt = np.dtype(output).newbyteorder(src.h['end'])
        rep.eq(where, 'float dtype, source byte order', want_dt, vol.get_data_dtype())
        arr = expected_fdata(src, output)
    want = expected(src, kind, params, arr)
    check_data(rep, where, vol, want)
    code = {None: None, 'float32': 16, 'float64': 64}[output]
    s = src.nib.header
    if kind == 'whole':
        check_fields(rep, where, src, path, [], code)
        rep.check(extensions(vol.header, True) == extensions(s, True), where,
                  'all extensions kept', len(s.extensions), len(vol.header.extensions))
    elif kind == 'range':
        a, b, step = params
        changed = ['dim', 'pixdim', 'toffset', 'intent_code']
        check_fields(rep, where, src, path, changed, code)
        tr = float(s['pixdim'][4])
        rep.eq(where, 'pixdim[4] = TR x step', np.float32(tr * step) if src.h['fmt'] == 1
               else tr * step, vol.header['pixdim'][4])
        toff = float(s['toffset']) + a * tr
        rep.check(np.isclose(float(vol.header['toffset']), toff, rtol=1e-6), where,
                  'toffset + A x TR', toff, float(vol.header['toffset']))
        intent = 0 if len(src.extra) > 1 else int(s['intent_code'])
        rep.eq(where, 'intent_code', intent, int(vol.header['intent_code']))
        rep.check(extensions(vol.header, False) == extensions(s, False) and
                  all(e.get_code() != 4 for e in vol.header.extensions), where,
                  'extensions but AFNI kept', len(extensions(s, False)),
                  len(vol.header.extensions))
    else:
        moved = ['dim', 'qoffset_x', 'qoffset_y', 'qoffset_z', 'srow_x', 'srow_y', 'srow_z']
        check_fields(rep, where, src, path, moved, code)
    check_affine(rep, where, src, vol, kind, params)
    tools(rep, where, src, path, budget)


def check_views(rep, wd, src, mnt):
    """Listing and a sample of views of one image, stored and float."""
    check_listing(rep, wd, src, mnt)
    budget = [TOOL_LIMIT]
    outputs = [(None, '')]
    if has_floats(src):
        outputs += [('float32', 'float32/'), ('float64', 'float64/')]
    for output, dirname in outputs:
        for name, kind, params in selections(src):
            if os.path.dirname(name):
                sub, name = name.split('/')
                d = dirname + sub + '/'
            else:
                d = dirname
            if kind == 'whole' and name in src.names():
                continue  # STEM.nii would be a volume's name: the volume keeps it
            check_view(rep, wd, src, mnt, d, name, kind, params, output, budget)
