"""Decoding only the region of a JPEG that a clip's crop keeps.

A training crop keeps 37-56% of a 256x456 frame's columns, and a validation centre crop
about half: libjpeg-turbo can skip the inverse DCT and colour conversion of the other
columns (jpeg_crop_scanline), skip the rows above (jpeg_skip_scanlines) and stop after the
last row needed. simplejpeg and OpenCV do not expose this, so a small C library
(jpeg_region.c) is built at set-up (`python -m datasets.jpeg_region --build`, run by
Script/setup_env.sh) against the system's libjpeg, and called through ctypes, which releases
the GIL. Without a compiler or libjpeg's headers it is not built, and the loaders decode whole
frames as before: the same pixels, more time (`python -m utils.doctor` says which).

The pixels equal a whole-frame decode's (islow IDCT, fancy upsampling, a margin decoded
around the region), so clips are bit-identical either way; tests check it against simplejpeg.
"""
import argparse
import contextlib
import ctypes
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import simplejpeg

from .video_reader import DecodeError

SOURCE = osp.join(osp.dirname(osp.abspath(__file__)), 'jpeg_region.c')
LIBRARY = osp.join(osp.dirname(osp.abspath(__file__)), '_jpeg_region.so')
MARGIN = 8                  # pixels decoded around the region: chroma upsampling's neighbours
MESSAGE_SIZE = 200
_loaded = None               # the ctypes library, False when it cannot be loaded


def build(compiler=None):
    """Compile jpeg_region.c into _jpeg_region.so; returns (ok, what happened)."""
    compiler = compiler or os.environ.get('CC') or sysconfig.get_config_var('CC') or 'cc'
    compiler = compiler.split()[0]
    if shutil.which(compiler) is None:
        return False, f'no C compiler ({compiler}) found'
    partial = LIBRARY + f'.{os.getpid()}.tmp'
    command = [compiler, '-O2', '-shared', '-fPIC', '-o', partial, SOURCE, '-ljpeg']
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        if osp.exists(partial):
            os.remove(partial)
        reason = (result.stderr.strip().splitlines() or ['failed'])[-1]
        return False, f'{" ".join(command)}: {reason} (libjpeg headers: the libjpeg-dev package)'
    os.replace(partial, LIBRARY)
    return True, f'built {LIBRARY}'


def library():
    """The loaded library, or None when it was not built or does not load."""
    global _loaded
    if _loaded is None:
        _loaded = False
        if osp.isfile(LIBRARY):
            try:
                lib = ctypes.CDLL(LIBRARY)
            except OSError:
                return None
            ubyte_p = ctypes.POINTER(ctypes.c_ubyte)
            lib.dlac_jpeg_scaled_size.argtypes = [
                ctypes.c_char_p, ctypes.c_ulong, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                ctypes.POINTER(ctypes.c_int), ctypes.c_char_p]
            lib.dlac_jpeg_decode_region.argtypes = [
                ctypes.c_char_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                ctypes.c_int, ubyte_p, ctypes.c_long, ctypes.c_long, ctypes.c_char_p]
            _loaded = lib
    return _loaded or None


@contextlib.contextmanager
def switched_off():
    """Within: as if the library were not built (whole frames decoded; the benchmark's
    baseline). Loader workers forked within keep it off."""
    global _loaded
    built = _loaded
    _loaded = False
    try:
        yield
    finally:
        _loaded = built


def _as_bytes(data):
    """ctypes' c_char_p takes bytes without a copy; other buffers are made bytes once."""
    return data if isinstance(data, bytes) else bytes(data)


def scaled_size(data, name, min_side):
    """(width, height, num): the size simplejpeg decodes this JPEG to for `min_side` (the
    largest DCT scale keeping both sides >= min_side), and that scale as num/8."""
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data, min_height=min_side,
                                                            min_width=min_side)
    except ValueError as err:
        raise DecodeError(f'cannot decode JPEG {name}: {err}') from None
    lib, data = library(), _as_bytes(data)
    message = ctypes.create_string_buffer(MESSAGE_SIZE)
    for num in range(8, 0, -1) if min_side > 0 else (8,):
        w, h = ctypes.c_int(), ctypes.c_int()
        if lib.dlac_jpeg_scaled_size(data, len(data), num, ctypes.byref(w), ctypes.byref(h), message):
            raise DecodeError(f'cannot decode JPEG {name}: {message.value.decode(errors="replace")}')
        if (w.value, h.value) == (width, height):
            return width, height, num
    raise DecodeError(f'cannot decode JPEG {name}: no DCT scale gives simplejpeg\'s {width}x{height}')


def decode_region(data, name, num, size, box, out):
    """Decode region `box` (x, y, w, h) of a JPEG that decodes to `size` (width, height) at
    scale num/8 into `out`: uint8 [h, w, 3] with packed pixels for RGB, or [h, w] for grey
    (any positive strides: e.g. one channel of a flow clip's [T, H, W, 2])."""
    x, y, w, h = box
    rgb = out.ndim == 3
    packed = out.strides[1:] == (3, 1) if rgb else out.strides[1] > 0
    if out.shape not in ((h, w, 3), (h, w)) or out.dtype != np.uint8 or not packed or out.strides[0] <= 0:
        raise ValueError(f'decode_region needs a uint8 [{h}, {w}, 3] array with packed pixels, '
                         f'or a uint8 [{h}, {w}] plane')
    data = _as_bytes(data)
    message = ctypes.create_string_buffer(MESSAGE_SIZE)
    target = out.ctypes.data_as(ctypes.POINTER(ctypes.c_ubyte))
    if library().dlac_jpeg_decode_region(data, len(data), num, size[0], size[1], x, y, w, h,
                                         MARGIN, 3 if rgb else 1, target, out.strides[0],
                                         out.strides[1], message):
        text = message.value.decode(errors='replace')
        if text.startswith('size '):
            raise DecodeError(f'{name}: {text}')
        raise DecodeError(f'cannot decode JPEG {name}: {text}')
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description='Build the JPEG region decoder')
    parser.add_argument('--build', action='store_true', help='compile jpeg_region.c')
    parser.add_argument('--strict', action='store_true', help='exit 1 when it cannot be built')
    args = parser.parse_args(argv)
    if args.build:
        ok, what = build()
        print(('[setup] JPEG region decoder: ' if ok else '[setup] JPEG region decoder not built: ')
              + what + ('' if ok else '; frames are decoded whole, the same clips, slower'),
              file=sys.stderr)
        return 1 if args.strict and not ok else 0
    print('built' if library() else 'not built', LIBRARY)
    return 0


if __name__ == '__main__':
    sys.exit(main())
