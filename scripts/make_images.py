#!/usr/bin/env python3
"""Generate the NIfTI test image set used by crosscheck.py (and anyone else).

Usage:  python scripts/make_images.py OUTDIR      (run with /opt/nifuse-venv/bin/python)

Deterministic (seeded).  The set covers the space nifuse must handle rather
than a list of favourites:

  dtypes/        every datatype nibabel can read (uint8 .. complex128, RGB24,
                 RGBA32) in both byte orders, NIfTI-1 .nii, plus NIfTI-2 each
  formats/       {NIfTI-1, NIfTI-2} x {.nii, .nii.gz, .hdr/.img, .hdr/.img.gz}
                 x {little, big endian}, with a comment extension
  dims/          3D, 4D with one volume, 1x1x1xN, 7x5x3x2, 5D, 6D, 7D
  scaled/        scl_slope/scl_inter set (also NaN and 0 slope = unscaled)
  headers/       extensions (comment ecode 6, AFNI ecode 4 that volumes must
                 drop), intent 2001 (-> 0 in volumes), other intents, a
                 vox_offset with padding before the data, qfac -1, junk in
                 dim[dim[0]+1:] (must be ignored)
  big/           1200 volumes (4 digit names), exactly 10000 volumes (still 4
                 digits: largest index 9999), 10001 volumes (5 digits), and
                 768 KiB volumes of noise (many reads / gzip windows each)
  sub-01/..      images in nested subdirectories
  magic/         gzip detected by magic bytes, not by the name; multi-member
                 bgzip-style (FEXTRA) and FNAME gzip headers
  names/         spaces and non-ASCII in names, a hidden file, an empty directory
  nibabel_written/  files written by nib.save itself (auto scaling etc.)
  nibabel_samples/  the NIfTI samples shipped in nibabel/tests/data (its
                 header-only nifti1.hdr / nifti2.hdr get a generated .img)
  top level / nonimages/: notes.txt, bad.nii (not NIfTI), empty.nii, a symlink,
                 an orphan .hdr, a stray .img, an Analyze-7.5 pair, a datatype
                 1 (binary) image, truncated images (.nii, .nii.gz, .hdr/.img).

Single files are written byte by byte from a nibabel header object so that the
byte order, extensions, vox_offset and scaling are exactly what is asked for.
"""
import gzip
import io
import logging
import os
import shutil
import struct
import sys
import zlib

import numpy as np
import nibabel as nib
from nibabel.nifti1 import Nifti1Extension, Nifti1PairHeader
from nibabel.nifti2 import Nifti2PairHeader

SEED = 20240611
RGB = np.dtype([('R', 'u1'), ('G', 'u1'), ('B', 'u1')])
RGBA = np.dtype([('R', 'u1'), ('G', 'u1'), ('B', 'u1'), ('A', 'u1')])
DTYPES = {
    'uint8': 'u1', 'int8': 'i1', 'int16': 'i2', 'uint16': 'u2', 'int32': 'i4',
    'uint32': 'u4', 'int64': 'i8', 'uint64': 'u8', 'float32': 'f4',
    'float64': 'f8', 'complex64': 'c8', 'complex128': 'c16',
    'rgb24': RGB, 'rgba32': RGBA,
}
# float128 / complex256 (codes 1536 / 2048) are left out: nibabel only reads
# them where np.longdouble is IEEE binary128, which is not the case on x86-64.
HEADERS = {(1, True): nib.Nifti1Header, (1, False): Nifti1PairHeader,
           (2, True): nib.Nifti2Header, (2, False): Nifti2PairHeader}
COMMENT = Nifti1Extension(6, b'nifuse test comment extension\x00')
AFNI = Nifti1Extension(4, b'<?xml version="1.0" ?>\n<AFNI_attributes ni_form='
                          b'"ni_group">\n<AFNI_atr atr_name="TAXIS_NUMS" />\n'
                          b'</AFNI_attributes>\n\x00')
OTHER = Nifti1Extension(40, bytes(range(200)))
logging.getLogger('nibabel').setLevel(logging.CRITICAL)


def make_data(rng, shape, dtype):
    """Random data of a dtype, with NaN/inf/-0.0 sprinkled into floats."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.fields is not None:
        return np.frombuffer(rng.bytes(n * dt.itemsize), dt).reshape(shape)
    if dt.kind in 'iu':
        info = np.iinfo(dt)
        arr = rng.integers(info.min, info.max, size=n, dtype=dt, endpoint=True)
    else:
        real = dt if dt.kind == 'f' else np.dtype('f%d' % (dt.itemsize // 2))
        arr = (rng.standard_normal(n) * 1000).astype(real)
        if dt.kind == 'c':
            arr = arr + 1j * (rng.standard_normal(n) * 1000).astype(real)
        arr = arr.astype(dt)
        specials = [np.nan, np.inf, -np.inf, -0.0, np.finfo(real).tiny / 4]
        for i, v in zip(rng.choice(n, size=min(n, len(specials)), replace=False),
                        specials):
            arr[i] = v
    return arr.reshape(shape, order='F')


def random_affine(rng, zooms, flip=False):
    """A rotation + zooms + translation affine (det < 0 if flip)."""
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    if (np.linalg.det(q) < 0) != flip:
        q[:, 0] = -q[:, 0]
    aff = np.eye(4)
    aff[:3, :3] = q * np.asarray(zooms[:3])
    aff[:3, 3] = rng.uniform(-100, 100, 3)
    return aff


def fill_header(rng, hdr, shape, dtype, flip=False):
    """Set shape/dtype and plausible values in every copied header field."""
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape(shape)
    zooms = tuple(np.round(rng.uniform(0.5, 3.5, len(shape)), 3))
    hdr.set_zooms(zooms)
    aff = random_affine(rng, zooms, flip)
    hdr.set_qform(aff, code=int(rng.integers(1, 5)))
    aff2 = aff.copy()
    aff2[0, 1] += 0.125  # a shear: sform and qform differ
    hdr.set_sform(aff2, code=int(rng.integers(0, 5)))
    hdr.set_xyzt_units(str(rng.choice(['mm', 'meter', 'micron'])),
                       str(rng.choice(['sec', 'msec', 'usec'])))
    if len(shape) >= 3:
        hdr.set_dim_info(freq=0, phase=1, slice=2)
        hdr['slice_code'] = int(rng.integers(1, 7))
        hdr['slice_start'] = 0
        hdr['slice_end'] = shape[2] - 1
        hdr['slice_duration'] = 0.0625
    hdr['toffset'] = float(rng.uniform(0, 5))
    hdr['cal_min'], hdr['cal_max'] = -3.5, 1234.25
    hdr['descrip'] = b'nifuse crosscheck %d' % int(rng.integers(1e6))
    hdr['aux_file'] = b'aux.txt'


def gz(raw, style=True):
    """gzip bytes: plain (True), 'fname' (FNAME field set) or 'bgzf' (bgzip-like:
    many members of <= 64 KiB, each with an FEXTRA 'BC' field, and an empty last one)."""
    if style == 'fname':
        buf = io.BytesIO()
        with gzip.GzipFile('scan.nii', 'wb', fileobj=buf, mtime=0) as f:
            f.write(raw)
        return buf.getvalue()
    if style != 'bgzf':
        return gzip.compress(raw, mtime=0)
    out = []
    for i in list(range(0, len(raw), 65280)) + [len(raw)]:
        block = raw[i:i + 65280]
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = c.compress(block) + c.flush()
        out += [b'\x1f\x8b\x08\x04' + bytes(4) + b'\x00\xff',
                struct.pack('<HBBHH', 6, 66, 67, 2, len(body) + 25), body,
                struct.pack('<II', zlib.crc32(block), len(block))]
    return b''.join(out)


def write_nifti(root, rel, data, rng, fmt=1, endian='<', compress=None,
                slope=None, inter=None, intent=None, exts=(), vox_offset=0,
                pad=b'', truncate=None, flip=False, dim_junk=False):
    """Write `data` as an image at root/rel.

    rel ending in .hdr makes a pair (.img, or .img.gz if compress); otherwise a
    single file, gzip-compressed if compress (default: name ends in .gz).
    compress may be a gz() style. truncate=f keeps only a fraction f of the
    bytes of the (data) file. dim_junk puts values in dim[dim[0]+1:], which
    readers must ignore.
    """
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    single = not rel.endswith('.hdr')
    if compress is None:
        compress = rel.endswith('.gz')
    dt = np.dtype(data.dtype)
    if dt.fields is None and dt.itemsize > 1:
        dt = dt.newbyteorder(endian)
    hdr = HEADERS[fmt, single](endianness=endian)
    fill_header(rng, hdr, data.shape, dt, flip)
    if dim_junk:
        hdr['dim'][data.ndim + 1:] = [7, 0, 9, 3][:7 - data.ndim]
    if slope is not None:
        hdr['scl_slope'], hdr['scl_inter'] = slope, inter
    if intent is not None:
        hdr.set_intent(intent[0], intent[1], name=intent[2])
    for ext in exts:
        hdr.extensions.append(ext)
    if single:
        hdr['vox_offset'] = vox_offset
    body = data.astype(dt).tobytes(order='F')
    with open(path if single else path[:-4] + '.hdr', 'wb') as f:
        hdr.write_to(f)
        if single:
            f.write(pad[:int(hdr['vox_offset']) - f.tell()])
            f.write(bytes(int(hdr['vox_offset']) - f.tell()))
            f.write(body)
    out = path if single else path[:-4] + '.img'
    raw = open(out, 'rb').read() if single else body
    if compress:
        raw = gz(raw, compress)
        if not single:
            out += '.gz'
    if truncate is not None:
        raw = raw[:int(len(raw) * truncate)]
    with open(out, 'wb') as f:
        f.write(raw)
    return path


def make_dtypes(root, rng):
    for i, (name, dt) in enumerate(DTYPES.items()):
        for endian in '<>':
            data = make_data(rng, (7, 5, 3, 2), dt)
            tag = 'le' if endian == '<' else 'be'
            write_nifti(root, f'dtypes/n1_{name}_{tag}.nii', data, rng, 1, endian)
        endian = '<>'[i % 2]
        ext = '.nii.gz' if i % 3 == 0 else '.nii'
        write_nifti(root, f'dtypes/n2_{name}_{"lb"[i % 2]}e{ext}',
                    make_data(rng, (5, 3, 2, 3), dt), rng, 2, endian)


def make_formats(root, rng):
    for fmt in (1, 2):
        for cont in ('.nii', '.nii.gz', '.hdr', '.img.gz'):
            for endian in '<>':
                dt = ['i2', 'f4', 'u2', 'f8'][(fmt + len(cont)) % 4]
                tag = cont.strip('.').replace('.', '') + ('_le' if endian == '<' else '_be')
                pair = cont.startswith(('.hdr', '.img'))
                rel = f'formats/n{fmt}_{tag}' + ('.hdr' if pair else cont)
                write_nifti(root, rel, make_data(rng, (6, 4, 3, 5), dt), rng, fmt,
                            endian, compress=cont.endswith('.gz'), exts=[COMMENT])


def make_dims(root, rng):
    cases = [((5, 4, 3), 'dims/3d.nii', 1, '<'), ((5, 4, 3), 'dims/3d_n2.nii.gz', 2, '>'),
             ((3, 3, 3, 1), 'dims/4d_one.nii', 1, '>'),
             ((1, 1, 1, 7), 'dims/1x1x1x7.nii', 1, '<'),
             ((7, 5, 3, 2), 'dims/7x5x3x2.hdr', 1, '<'),
             ((4, 3, 2, 3, 2), 'dims/5d.nii.gz', 1, '<'),
             ((3, 3, 2, 1, 4), 'dims/5d_n2_be.nii', 2, '>'),
             ((3, 2, 2, 2, 3, 2), 'dims/6d.nii', 1, '>'),
             ((2, 2, 2, 2, 1, 3, 2), 'dims/7d_be_pair.hdr', 1, '>'),
             ((1, 1, 1, 1, 5, 4), 'dims/6d_cifti_like_n2.nii', 2, '<')]
    for i, (shape, rel, fmt, endian) in enumerate(cases):
        dt = ['i2', 'f4', 'u1', 'c8', 'i4'][i % 5]
        write_nifti(root, rel, make_data(rng, shape, dt), rng, fmt, endian,
                    compress=rel.endswith('.gz') or i == 8)


def make_scaled(root, rng):
    shp = (6, 5, 4, 3)
    write_nifti(root, 'scaled/int16_s2.5_i-10.nii', make_data(rng, shp, 'i2'), rng,
                slope=2.5, inter=-10.0)
    write_nifti(root, 'scaled/uint8_s0.5_i3_n2.nii.gz', make_data(rng, shp, 'u1'),
                rng, 2, slope=0.5, inter=3.0)
    write_nifti(root, 'scaled/float32_s2_i1_be.nii', make_data(rng, shp, 'f4'), rng,
                1, '>', slope=2.0, inter=1.0)
    write_nifti(root, 'scaled/int16_nan_slope.hdr', make_data(rng, shp, 'i2'), rng,
                slope=np.nan, inter=np.nan)
    write_nifti(root, 'scaled/int32_zero_slope_be.nii.gz', make_data(rng, shp, 'i4'),
                rng, 1, '>', slope=0.0, inter=5.0)
    write_nifti(root, 'scaled/int8_s-1.25_n2_be.hdr', make_data(rng, shp, 'i1'), rng,
                2, '>', compress=True, slope=-1.25, inter=0.75)


def make_headers(root, rng):
    shp = (5, 4, 3, 4)
    write_nifti(root, 'headers/ext_comment_afni_comment.nii', make_data(rng, shp, 'i2'),
                rng, exts=[COMMENT, AFNI, OTHER, COMMENT])
    write_nifti(root, 'headers/ext_afni_only_be.nii.gz', make_data(rng, shp, 'f4'), rng,
                1, '>', exts=[AFNI])
    write_nifti(root, 'headers/ext_n2_be.nii', make_data(rng, shp, 'u2'), rng, 2, '>',
                exts=[OTHER, AFNI, COMMENT])
    write_nifti(root, 'headers/ext_afni_pair.hdr', make_data(rng, shp, 'i2'), rng,
                exts=[AFNI, COMMENT])
    ts = ('time series', (), 'bold')
    write_nifti(root, 'headers/intent_2001.nii', make_data(rng, shp, 'i2'), rng, intent=ts)
    write_nifti(root, 'headers/intent_2001_n2_be.nii.gz', make_data(rng, shp, 'f8'), rng,
                2, '>', intent=ts, exts=[AFNI])
    write_nifti(root, 'headers/intent_2001_pair.hdr', make_data(rng, shp, 'u1'), rng,
                intent=ts)
    write_nifti(root, 'headers/intent_label.nii', make_data(rng, shp, 'i2'), rng,
                intent=('label', (), 'labels'))
    write_nifti(root, 'headers/intent_ttest.nii', make_data(rng, shp, 'f4'), rng,
                intent=('t test', (12.0,), 'tstat'))
    write_nifti(root, 'headers/vox_offset_1024.nii', make_data(rng, shp, 'i2'), rng,
                vox_offset=1024, pad=b'\xa5' * 1024)
    write_nifti(root, 'headers/vox_offset_2048_n2.nii', make_data(rng, shp, 'f4'), rng, 2,
                vox_offset=2048, pad=b'\x5a' * 2048)
    write_nifti(root, 'headers/qfac_neg.nii', make_data(rng, shp, 'i2'), rng, flip=True)


def make_big(root, rng):
    write_nifti(root, 'big/vols1200.nii.gz', make_data(rng, (4, 4, 3, 1200), 'i2'), rng)
    write_nifti(root, 'big/vols10000.nii.gz', make_data(rng, (1, 1, 1, 10000), 'u1'), rng)
    write_nifti(root, 'big/vols10001.nii', make_data(rng, (2, 2, 1, 10001), 'f4'), rng)
    # volumes of 768 KiB of noise: many FUSE reads and gzip checkpoints per volume
    write_nifti(root, 'big/large_vols.nii.gz', make_data(rng, (64, 64, 48, 5), 'f4'), rng,
                exts=[COMMENT])
    write_nifti(root, 'big/large_vols_be.nii', make_data(rng, (64, 64, 48, 3), 'f4'), rng,
                2, '>')


def make_tree(root, rng):
    write_nifti(root, 'sub-01/func/sub-01_task-rest_bold.nii.gz',
                make_data(rng, (8, 8, 5, 20), 'i2'), rng, intent=('time series', (), ''))
    write_nifti(root, 'sub-01/anat/sub-01_T1w.nii', make_data(rng, (9, 8, 7), 'u2'), rng)
    write_nifti(root, 'sub-02/ses-1/func/bold.hdr', make_data(rng, (6, 6, 4, 8), 'f4'),
                rng, 1, '>', compress=True)
    write_nifti(root, 'magic/gz_content_named.nii', make_data(rng, (4, 4, 3, 6), 'i2'),
                rng, compress=True)
    write_nifti(root, 'magic/plain_content_named.nii.gz',
                make_data(rng, (4, 4, 3, 6), 'i2'), rng, compress=False)
    write_nifti(root, 'magic/bgzf_multimember.nii.gz', make_data(rng, (32, 32, 20, 4), 'f4'),
                rng, compress='bgzf', exts=[COMMENT])
    write_nifti(root, 'magic/bgzf_pair.hdr', make_data(rng, (16, 16, 10, 7), 'i2'), rng,
                1, '>', compress='bgzf')
    write_nifti(root, 'magic/gzip_fname.nii.gz', make_data(rng, (5, 5, 5, 5), 'u2'), rng,
                compress='fname')
    write_nifti(root, 'headers/dim_junk_after_dim0.nii', make_data(rng, (5, 4, 3, 6), 'i2'),
                rng, dim_junk=True)
    write_nifti(root, 'headers/dim_junk_3d_n2.nii.gz', make_data(rng, (5, 4, 3), 'f4'), rng,
                2, dim_junk=True)
    write_nifti(root, 'names/with space ü.nii.gz', make_data(rng, (3, 3, 3, 3), 'i2'), rng)
    write_nifti(root, 'names/.hidden.nii', make_data(rng, (3, 3, 3, 2), 'i2'), rng)
    write_nifti(root, 'names/dots.in.name.v2.hdr', make_data(rng, (3, 3, 3, 2), 'u1'), rng)
    os.makedirs(os.path.join(root, 'names', 'empty_dir'), exist_ok=True)


def make_nibabel_written(root, rng):
    d = os.path.join(root, 'nibabel_written')
    os.makedirs(d, exist_ok=True)
    aff = random_affine(rng, (2, 2, 3))
    img = nib.Nifti1Image(rng.standard_normal((6, 5, 4, 3)) * 50, aff)
    img.set_data_dtype(np.int16)  # nibabel picks its own scl_slope/scl_inter
    nib.save(img, os.path.join(d, 'auto_scaled_int16.nii.gz'))
    nib.save(nib.Nifti2Pair(make_data(rng, (5, 4, 3, 4), 'f4'), aff),
             os.path.join(d, 'nifti2_pair.hdr'))
    hdr = nib.Nifti1Header().as_byteswapped('>')
    be = nib.Nifti1Image(make_data(rng, (5, 4, 3, 2), 'i4').astype('>i4'), aff, header=hdr)
    nib.save(be, os.path.join(d, 'byteswapped_int32.nii'))
    nib.save(nib.Nifti2Image(make_data(rng, (3, 4, 5, 2, 2), 'u2'), aff),
             os.path.join(d, 'nifti2_5d.nii.gz'))


def make_nonimages(root, rng):
    d = os.path.join(root, 'nonimages')
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(root, 'notes.txt'), 'w') as f:
        f.write('Test data for nifuse. Not an image.\n')
    os.symlink('notes.txt', os.path.join(root, 'notes_link.txt'))
    with open(os.path.join(root, 'bad.nii'), 'wb') as f:
        f.write(b'This file is called bad.nii but it is not NIfTI.\n' * 12)
    open(os.path.join(d, 'empty.nii'), 'wb').close()
    with open(os.path.join(d, 'lonely.img'), 'wb') as f:
        f.write(rng.bytes(600))
    write_nifti(root, 'nonimages/orphan.hdr', make_data(rng, (4, 4, 4, 2), 'i2'), rng)
    os.remove(os.path.join(d, 'orphan.img'))
    nib.save(nib.AnalyzeImage(make_data(rng, (4, 4, 3, 2), 'i2'), np.eye(4)),
             os.path.join(d, 'analyze75.hdr'))
    hdr = nib.Nifti1Header()  # datatype 1 (binary): a volume is 27 bits
    hdr.set_data_shape((3, 3, 3, 3))
    hdr['datatype'], hdr['bitpix'], hdr['vox_offset'] = 1, 1, 352
    with open(os.path.join(d, 'binary_dt1.nii'), 'wb') as f:
        f.write(hdr.binaryblock + bytes(4) + rng.bytes(11))
    # truncated: 6.5 of 10 volumes present -> vol 0..5 readable, 6..9 EIO
    vox = 352 + 6 * 5 * 4 * 2 * 6.5
    full = 352 + 6 * 5 * 4 * 2 * 10
    write_nifti(root, 'truncated.nii', make_data(rng, (6, 5, 4, 10), 'i2'), rng,
                truncate=vox / full)
    write_nifti(root, 'nonimages/truncated_pair.hdr', make_data(rng, (5, 5, 5, 6), 'f8'),
                rng, 2, '>', truncate=0.5)
    write_nifti(root, 'nonimages/truncated.nii.gz',  # 64 KiB volumes, ~5 complete
                make_data(rng, (32, 32, 16, 10), 'f4'), rng, truncate=0.6)


def copy_nibabel_samples(root, rng):
    """Copy nibabel's shipped NIfTI samples; give ni1/ni2 .hdr files an .img."""
    src = os.path.join(os.path.dirname(nib.__file__), 'tests', 'data')
    dst = os.path.join(root, 'nibabel_samples')
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if name.endswith(('.nii', '.nii.gz')):
            for klass in (nib.Nifti1Image, nib.Nifti2Image):
                try:
                    klass.from_filename(path)
                except Exception:
                    continue
                shutil.copy2(path, os.path.join(dst, name))
                break
        elif name.endswith('.hdr'):
            try:
                with open(path, 'rb') as f:  # raw header: keeps vox_offset
                    hdr = type(nib.load(path).header).from_fileobj(f)
            except Exception:
                continue
            if hdr.get('magic', b'') not in (b'ni1', b'ni2'):
                continue  # Analyze-only: nifuse shows it as a plain file
            shutil.copy2(path, os.path.join(dst, name))
            img = os.path.join(src, name[:-4] + '.img')
            out = os.path.join(dst, name[:-4] + '.img')
            if os.path.exists(img):
                shutil.copy2(img, out)
            else:  # nibabel ships the header alone: make matching data
                n = int(np.prod(hdr.get_data_shape())) * hdr.get_data_dtype().itemsize
                with open(out, 'wb') as f:
                    f.write(bytes(int(hdr['vox_offset'])) + rng.bytes(n))


def main(argv):
    if len(argv) != 2:
        sys.exit('usage: make_images.py OUTDIR')
    root = argv[1]
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for step in (make_dtypes, make_formats, make_dims, make_scaled, make_headers,
                 make_big, make_tree, make_nibabel_written, make_nonimages,
                 copy_nibabel_samples):
        step(root, rng)
    count = sum(len(files) for _, _, files in os.walk(root))
    print(f'make_images: wrote {count} files under {root}')


if __name__ == '__main__':
    main(sys.argv)
