"""tqdm progress bars that stay readable when output goes to a file or a CI log."""
import os
import sys

from tqdm import tqdm


def progress(iterable, desc, total=None, disable=False, **kwargs):
    """A live bar on a terminal; on a pipe, a line every 30 s. DLAC_PROGRESS=0 turns it off."""
    interactive = sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, dynamic_ncols=True, leave=interactive,
                mininterval=0.5 if interactive else 30.0,
                disable=disable or os.environ.get('DLAC_PROGRESS', '1') == '0', **kwargs)
