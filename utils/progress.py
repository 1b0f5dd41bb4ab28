"""tqdm progress bars that stay readable when output goes to a file or a CI log."""
import os
import sys

from tqdm import tqdm


def progress(iterable, desc, total=None, disable=False, leave=None, **kwargs):
    """A live bar on a terminal; on a pipe, a line every 30 s. DLAC_PROGRESS=0 turns it off.
    `leave`: keep the finished bar (default: on a terminal); inner bars (frames, windows
    within a video) pass False."""
    interactive = sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, dynamic_ncols=True,
                leave=interactive if leave is None else leave and interactive,
                mininterval=0.5 if interactive else 30.0,
                disable=disable or os.environ.get('DLAC_PROGRESS', '1') == '0', **kwargs)
