#!/usr/bin/env python3
"""Writes a small synthetic fMRI-like sample into a directory, with the
standard library only (no download, no nibabel):

    python3 scripts/make_sample.py DIR

DIR/bold.nii.gz  64x64x30x20 int16, 2.5 mm isotropic, TR 2 s, a smooth blob
                 whose amplitude drifts over time plus deterministic noise
DIR/T1w.nii      64x64x30 float32 (one volume)
"""
import gzip, math, os, random, struct, sys


def header(dims, datatype, bitpix, pixdim, xyzt_units=10):
    """A little-endian NIfTI-1 single-file header plus 4 extender bytes."""
    dim = [len(dims)] + list(dims) + [1] * (7 - len(dims))
    pix = [1.0] + list(pixdim) + [0.0] * (7 - len(pixdim))
    h = bytearray(352)
    struct.pack_into('<i', h, 0, 348)
    struct.pack_into('<8h', h, 40, *dim)
    struct.pack_into('<hh', h, 70, datatype, bitpix)
    struct.pack_into('<8f', h, 76, *pix)
    struct.pack_into('<fff', h, 108, 352.0, 1.0, 0.0)   # vox_offset, scl_slope, scl_inter
    h[123] = xyzt_units                                  # mm and seconds
    h[148:148 + 22] = b'nifuse sample (synth.)'
    struct.pack_into('<hh', h, 252, 1, 1)                # qform_code, sform_code scanner
    x0, y0, z0 = (-(dims[i] - 1) * pixdim[i] / 2 for i in range(3))
    struct.pack_into('<6f', h, 256, 0, 0, 0, x0, y0, z0)  # quaternion b,c,d, offsets
    struct.pack_into('<4f', h, 280, pixdim[0], 0, 0, x0)
    struct.pack_into('<4f', h, 296, 0, pixdim[1], 0, y0)
    struct.pack_into('<4f', h, 312, 0, 0, pixdim[2], z0)
    h[344:348] = b'n+1\0'
    return bytes(h)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'sample'
    os.makedirs(out, exist_ok=True)
    nx, ny, nz, nt = 64, 64, 30, 20
    rng = random.Random(1)
    blob = [math.exp(-((x - 32) ** 2 + (y - 30) ** 2) / 200.0 - (z - 15) ** 2 / 60.0)
            for z in range(nz) for y in range(ny) for x in range(nx)]
    vols = []
    for t in range(nt):
        amp = 800 + 200 * math.sin(t / 3.0)
        vols.append(struct.pack('<%dh' % len(blob),
                                *(int(100 + amp * b + rng.gauss(0, 20)) for b in blob)))
    with gzip.open(os.path.join(out, 'bold.nii.gz'), 'wb', compresslevel=6) as f:
        f.write(header((nx, ny, nz, nt), 4, 16, (2.5, 2.5, 2.5, 2.0)))
        f.writelines(vols)
    with open(os.path.join(out, 'T1w.nii'), 'wb') as f:
        f.write(header((nx, ny, nz), 16, 32, (2.5, 2.5, 2.5)))
        f.write(struct.pack('<%df' % len(blob), *(1000.0 * b for b in blob)))
    print('wrote %s/bold.nii.gz (%dx%dx%dx%d int16) and %s/T1w.nii' % (out, nx, ny, nz, nt, out))


if __name__ == '__main__':
    main()
