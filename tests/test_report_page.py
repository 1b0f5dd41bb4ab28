"""eval/report.html, the run on one page: what it shows, that it references only files that
exist and nothing outside, that data cannot inject markup, and that it renders in Chromium
with every image loaded, as a person would see it."""
import os.path as osp
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest

import config
from config_trained import flat_items
import evaluate
import train
from browser import is_blank, render_and_check
from conftest import require, run_main, tiny_overrides
from utils.plots import save_per_class_accuracy_png
from utils.report_page import confused_pairs, worst_rows, write_report_page

VOID_TAGS = {'img', 'br', 'meta', 'link', 'hr', 'input'}
OVERRIDDEN = {'TRAIN.EPOCHS': 1, 'TRAIN.REPORT_HTML': True, 'DATASET.SCALE_SIZE': 36,
              'DATASET.CROP_SIZE': 32}


class Elements(HTMLParser):
    """Every element of a page in document order: [tag, attributes, text inside, parent index]."""

    def __init__(self, page):
        super().__init__(convert_charrefs=True)
        self.found, self.open = [], []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.found.append([tag, dict(attrs), '', self.open[-1] if self.open else None])
        if tag not in VOID_TAGS:
            self.open.append(len(self.found) - 1)

    def handle_endtag(self, tag):
        while self.open and self.found[self.open.pop()][0] != tag:
            pass

    def handle_data(self, data):
        for index in self.open:
            self.found[index][2] += data

    def all(self, tag, css_class=None):
        return [(index, element) for index, element in enumerate(self.found) if element[0] == tag
                and (css_class is None or css_class in element[1].get('class', '').split())]

    def children(self, parent, tag):
        return [element for element in self.found if element[3] == parent and element[0] == tag]


def exp_folder(snapshot):
    return osp.join(str(snapshot), 'ar_output', 'tsn', 'synthetic_rgb_resnet18')


def read(path):
    with open(path, encoding='utf-8') as handle:
        return handle.read()


@pytest.fixture(scope='module')
def trained(tiny_root, tmp_path_factory):
    """One epoch with TRAIN.REPORT_HTML: (snapshot, overrides, the page training wrote)."""
    snapshot = tmp_path_factory.mktemp('report')
    overrides = tiny_overrides(tiny_root, snapshot, **OVERRIDDEN)
    assert run_main(train, overrides) == 0
    page_path = osp.join(exp_folder(snapshot), 'eval', 'report.html')
    return snapshot, overrides, read(page_path) if osp.isfile(page_path) else None


@pytest.fixture(scope='module')
def evaluated(trained):
    """evaluate.py on the trained run's best.pth, into a fresh eval/: (eval folder, page)."""
    snapshot, overrides, _ = trained
    eval_dir = osp.join(exp_folder(snapshot), 'eval')
    shutil.rmtree(eval_dir, ignore_errors=True)
    assert run_main(evaluate, overrides) == 0
    return eval_dir, read(osp.join(eval_dir, 'report.html'))


def referenced(page):
    """Every src and href of the page."""
    return [value for _, attributes, _, _ in Elements(page).found
            for name, value in attributes.items() if name in ('src', 'href')]


def assert_self_contained(page, folder):
    """No scripts, nothing from the network, every referenced file inside `folder` and there."""
    assert '<script' not in page.lower()
    assert not re.search(r'https?:', page, re.I), 'the page must not reach the network'
    links = referenced(page)
    assert links
    for link in links:
        path = osp.normpath(osp.join(folder, link))
        assert not osp.isabs(link) and path.startswith(folder + osp.sep), link
        assert osp.isfile(path), f'{link} is referenced but missing'


def test_training_writes_the_report_page_on_request(trained):
    _, _, page = trained
    assert page is not None, 'TRAIN.REPORT_HTML True: train.py writes eval/report.html'
    assert 'worst-classified videos' in page


def test_report_references_only_existing_files(evaluated):
    eval_dir, page = evaluated
    assert_self_contained(page, eval_dir)
    sources = [element[1]['src'] for _, element in Elements(page).all('img')]
    assert {'confusion.png', 'report_files/curves.png',
            'report_files/per_class_accuracy.png'} <= set(sources)


def test_settings_highlight_what_the_run_changed(evaluated, trained):
    _, page = evaluated
    elements = Elements(page)
    changed = {elements.children(index, 'td')[0][2]: elements.children(index, 'td')[1][2]
               for index, _ in elements.all('tr', 'changed')}
    defaults = config.default_config()
    for key, value in OVERRIDDEN.items():
        assert key in changed and changed[key] == str(value), key
    assert changed['DATASET.SYNTHETIC_FRAMES'] == '[12, 16]'
    # keys the test set to their default values, and keys it never touched, are not highlighted
    assert defaults.VAL.BATCH_SIZE == 8 and 'VAL.BATCH_SIZE' not in changed
    assert 'TRAIN.MOMENTUM' not in changed
    plain = [cells[0][2] for index, element in elements.all('tr')
             if 'changed' not in element[1].get('class', '') and (cells := elements.children(index, 'td'))]
    assert 'TRAIN.MOMENTUM' in plain and 'VAL.BATCH_SIZE' in plain
    every_key = [key for key, _ in flat_items(config.default_config())]
    listed = [key for key in list(changed) + plain if key in set(every_key)]
    assert sorted(listed) == sorted(every_key)      # each setting once (other tables aside)


def test_worst_clips_are_the_lowest_true_class_scores(evaluated):
    """The strips are of the 12 videos whose true class scored lowest, in that order, with
    their true and predicted class names and scores; each strip holds the frames seen."""
    eval_dir, page = evaluated
    saved = np.load(osp.join(eval_dir, 'scores.npz'))
    scores, labels, paths = saved['scores'], saved['labels'], saved['paths']
    names = list(saved['class_names'])
    true_scores = scores[np.arange(len(labels)), labels]
    expected = np.argsort(true_scores, kind='stable')[:12]
    assert len(labels) == 16                     # so 12 = min(12, validation videos)
    elements = Elements(page)
    figures = elements.all('figure', 'clip')
    assert len(figures) == 12
    shown_paths = [element[2] for _, element in elements.all('span', 'path')]
    assert shown_paths == [str(paths[row]) for row in expected]
    assert [e[2] for _, e in elements.all('span', 'true')] == [names[labels[row]] for row in expected]
    assert [e[2] for _, e in elements.all('span', 'predicted')] == [names[scores[row].argmax()]
                                                                   for row in expected]
    assert f'({true_scores[expected[0]]:.3f})' in figures[0][1][2]
    from PIL import Image
    for index, _ in figures:
        (image,) = elements.children(index, 'img')
        with Image.open(osp.join(eval_dir, image[1]['src'])) as strip:
            width, height = strip.size
        assert height == 72 and width >= 5 * 72        # VAL.NUM_SEGMENTS 5 frames side by side


def test_report_renders_in_chromium_with_every_image(evaluated, tmp_path):
    require(shutil.which('chromium'), 'Debian chromium is not installed (apt-get install chromium)')
    eval_dir, page = evaluated
    shot, images_ok, broken = render_and_check(osp.join(eval_dir, 'report.html'),
                                               str(tmp_path / 'report.png'))
    assert images_ok and broken == []
    assert not is_blank(shot)
    assert len(Elements(page).all('img')) == 3 + 12


def test_worst_rows_and_confused_pairs():
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.5, 0.1, 0.4]])
    labels = np.array([0, 1, 1, 2])
    assert worst_rows(scores, labels, 2).tolist() == [2, 3]       # 0.3, 0.4: lowest true scores
    matrix = np.array([[5, 3, 0], [1, 4, 0], [0, 6, 2]])
    assert confused_pairs(matrix, 2) == [(2, 1, 6, 75.0), (0, 1, 3, 37.5)]
    assert confused_pairs(np.eye(3, dtype=int)) == []


def test_per_class_bars_are_sorted_worst_first(tmp_path):
    accuracies = np.array([50.0, np.nan, 10.0, 90.0, 30.0])
    order = save_per_class_accuracy_png(accuracies, ['a', 'b', 'c', 'd', 'e'], str(tmp_path / 'bars.png'))
    assert order == ['c', 'e', 'a', 'd']        # class b has no videos: not drawn
    assert (tmp_path / 'bars.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_untrusted_names_are_escaped_and_missing_curves_said(tmp_path):
    """Class names, paths and config values come from data files: they show as text. A run
    without curves.png says so instead of showing a broken image."""
    cfg = config.build_config(['EXP_TAG', '<i>tag</i>', 'DATASET.CLASS_NUM', '3'])
    hostile = '<b>x</b>&'
    class_names = ['plain', hostile, 'third "quoted"']
    rng = np.random.default_rng(0)
    scores = rng.dirichlet(np.ones(3), size=6)
    labels = np.array([0, 1, 2, 0, 1, 2])
    paths = [f'videos/clip_{i}.mp4' for i in range(5)] + ['<img src=x onerror=alert(1)>.mp4']
    from utils.metrics import summarize
    metrics = summarize(scores, labels, 3)
    report = {key: value for key, value in metrics.items() if key != 'confusion'}
    report.update(views='1 clips x 1 crops', checkpoint='/x/<best>.pth', checkpoint_epoch=2)
    unreadable = int(worst_rows(scores, labels, 6)[1])

    def view_of(row):
        return None if row == unreadable else rng.integers(0, 256, (3, 4, 24, 32), dtype=np.uint8)

    page_path = write_report_page(str(tmp_path), cfg, report, metrics['confusion'], scores, labels,
                                  paths, class_names, view_of, curves_png=None)
    page = read(page_path)
    for raw in (hostile, '<i>tag</i>', '<img src=x', '<best>'):
        assert raw not in page
    assert '&lt;b&gt;x&lt;/b&gt;&amp;' in page and '&lt;i&gt;tag&lt;/i&gt;' in page
    elements = Elements(page)
    assert hostile in [element[2] for _, element in elements.all('span', 'true')]
    assert len(elements.all('figure', 'clip')) == 6 and 'could not be read again' in page
    assert 'No training curves' in page
    assert not [link for link in referenced(page) if link.endswith('curves.png')]
    assert 'No confusion.png' in page          # this folder has none: said, not a broken image
    assert_self_contained(page, str(tmp_path))
    if shutil.which('chromium'):
        _, images_ok, broken = render_and_check(page_path, str(tmp_path / 'shot.png'))
        assert images_ok, broken
