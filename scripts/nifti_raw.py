"""NIfTI-1/2 headers and extensions parsed from raw bytes with numpy, independently of
nifuse (shared by crosscheck.py and crosscheck_views.py)."""
import numpy as np
import nibabel as nib

FORMATS = {1: (348, nib.nifti1.header_dtype), 2: (540, nib.nifti2.header_dtype)}


def parse_header(buf, single):
    """Parse a NIfTI-1/2 header + extensions from bytes; None if not NIfTI."""
    for fmt, (size, dtype) in FORMATS.items():
        for end in '<>':
            if len(buf) < size or np.frombuffer(buf[:4], end + 'i4')[0] != size:
                continue
            rec = np.frombuffer(buf[:size], dtype.newbyteorder(end))[0]
            magic = bytes(rec['magic']).rstrip(b'\0')
            if magic not in (b'n+%d' % fmt, b'ni%d' % fmt):
                return None
            vox = int(rec['vox_offset'])
            stop, exts, pos = vox if single else len(buf), [], size + 4
            while len(buf) >= size + 4 and buf[size] != 0 and pos + 8 <= stop:
                esize, ecode = (int(x) for x in np.frombuffer(buf[pos:pos + 8], end + 'i4'))
                if esize < 8 or pos + esize > stop:
                    break
                exts.append((ecode, bytes(buf[pos + 8:pos + esize])))
                pos += esize
            return dict(fmt=fmt, size=size, end=end, rec=rec, magic=magic, vox=vox, exts=exts,
                        ext_end=pos)
    return None
