"""A page as a person sees it: rendered by headless Chromium (Debian's `chromium` package),
with a screenshot and a check that every image loaded.

The pages we write have no scripts, so the image check renders a copy of the page, in the
same folder (relative paths resolve the same), with a small script added that, once the page
has loaded, writes which images did not load into the DOM; `--dump-dom` then reads it back.

    from browser import render_and_check
    shot, images_ok, broken = render_and_check('eval/report.html')
"""
import html
import json
import os
import os.path as osp
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
from typing import List, NamedTuple

import numpy as np

CHROMIUM = 'chromium'
RESULT_ID = 'dlac-image-check'
CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var broken = [];
  for (var i = 0; i < document.images.length; i++) {
    var image = document.images[i];
    if (!(image.complete && image.naturalWidth > 0)) broken.push(image.getAttribute('src'));
  }
  var out = document.createElement('pre');
  out.id = '%s';
  out.textContent = JSON.stringify({images: document.images.length, broken: broken});
  document.body.appendChild(out);
});
</script>
""" % RESULT_ID


class BrowserError(RuntimeError):
    """Chromium could not be run, timed out, or did not produce what was asked."""


class Rendered(NamedTuple):
    screenshot: str          # PNG of the page's top, window-sized
    images_ok: bool          # every <img> loaded (complete, natural width > 0)
    broken: List[str]        # the src of each image that did not load


def chromium_path():
    """The Chromium binary (Debian's package), or None."""
    return shutil.which(CHROMIUM)


def _run_chromium(arguments, timeout):
    """stdout of headless Chromium with `arguments`; its whole process group is ended on a
    timeout (it starts helper processes)."""
    binary = chromium_path()
    if binary is None:
        raise BrowserError('chromium is not installed (apt-get install chromium)')
    with tempfile.TemporaryDirectory(prefix='dlac-chromium-') as profile:
        command = [binary, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                   '--hide-scrollbars', '--no-first-run', '--disable-extensions', '--mute-audio',
                   f'--user-data-dir={profile}', *arguments]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise BrowserError(f'chromium did not finish within {timeout} s: {" ".join(command)}') from None
    if process.returncode != 0:
        raise BrowserError(f'chromium exited with {process.returncode}: '
                           f'{err.decode("utf-8", "replace")[-2000:]}')
    return out.decode('utf-8', 'replace')


def screenshot(html_path, png_path, window_size=(1280, 2400), timeout=60):
    """A PNG of the page's top `window_size` (width, height) pixels; returns `png_path`."""
    if osp.exists(png_path):
        os.remove(png_path)
    _run_chromium([f'--window-size={window_size[0]},{window_size[1]}',
                   f'--screenshot={osp.abspath(png_path)}', _url(html_path)], timeout)
    if not osp.isfile(png_path) or osp.getsize(png_path) == 0:
        raise BrowserError(f'chromium wrote no screenshot of {html_path}')
    return png_path


def broken_images(html_path, timeout=60, budget_ms=10000):
    """(number of images, the src of each that did not load) once the page has loaded."""
    with open(html_path, encoding='utf-8') as handle:
        page = handle.read()
    at = page.lower().rfind('</body>')
    checked = page[:at] + CHECK_SCRIPT + page[at:] if at >= 0 else page + CHECK_SCRIPT
    folder = osp.dirname(osp.abspath(html_path))
    handle, copy = tempfile.mkstemp(prefix='.image-check-', suffix='.html', dir=folder)
    try:
        with os.fdopen(handle, 'w', encoding='utf-8') as out:
            out.write(checked)
        dom = _run_chromium([f'--virtual-time-budget={budget_ms}', '--dump-dom', _url(copy)], timeout)
    finally:
        os.remove(copy)
    found = re.search(r'<pre id="%s">(.*?)</pre>' % RESULT_ID, dom, re.S)
    if found is None:
        raise BrowserError(f'the image check did not run in {html_path} (no load event within '
                           f'{budget_ms} ms of virtual time?); the DOM ends: {dom[-500:]!r}')
    result = json.loads(html.unescape(found.group(1)))
    return result['images'], result['broken']


def is_blank(png_path, min_std=4.0):
    """True when the screenshot is one flat colour (nothing drawn): its grey levels' standard
    deviation is below `min_std`."""
    from PIL import Image
    grey = np.asarray(Image.open(png_path).convert('L'), dtype=np.float64)
    return float(grey.std()) < min_std


def render_and_check(html_path, screenshot_path=None, window_size=(1280, 2400), timeout=60):
    """Render `html_path` in headless Chromium: (screenshot path, every image loaded, the src
    of each image that did not). The screenshot goes to `screenshot_path`, by default a new
    temporary folder's page.png. Raises BrowserError when Chromium fails or times out."""
    if screenshot_path is None:
        screenshot_path = osp.join(tempfile.mkdtemp(prefix='dlac-render-'), 'page.png')
    shot = screenshot(html_path, screenshot_path, window_size, timeout)
    _, broken = broken_images(html_path, timeout)
    return Rendered(shot, not broken, broken)


def _url(path):
    return pathlib.Path(osp.abspath(path)).as_uri()
