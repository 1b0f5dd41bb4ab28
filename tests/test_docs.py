"""README.md is the front page and docs/ the guide: every relative link and #anchor in them
resolves, the front page stays short, keeps the two commands and links every docs page."""
import glob
import os.path as osp
import re

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
README = osp.join(ROOT, 'README.md')
DOCS = sorted(glob.glob(osp.join(ROOT, 'docs', '*.md')))
PAGES = [README] + DOCS

# The two commands, exactly: Script/quickstart.sh, .ci/run and the tests depend on them.
TWO_COMMANDS = [
    'bash Script/quickstart.sh     # set up, render the synthetic set, train TSN-ResNet18, evaluate, export, demo',
    'bash Script/run_tests.sh      # set up with the test tools and run the whole test suite',
]

LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')
FENCE = re.compile(r'^\s*(```|~~~)')
HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
CODE_SPAN = re.compile(r'`[^`]*`')


def prose_lines(text):
    """The lines outside fenced code blocks."""
    inside = False
    for line in text.split('\n'):
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            yield line


def github_anchor(heading):
    """GitHub's anchor of a heading: lower case, punctuation other than '-' and '_' removed,
    spaces to '-' (`Editing \\`config.py\\`` -> editing-configpy)."""
    return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def anchors(path):
    """Every anchor of a page, with GitHub's -1, -2 ... for repeated headings."""
    seen, found = {}, set()
    with open(path, encoding='utf-8') as handle:
        for line in prose_lines(handle.read()):
            match = HEADING.match(line)
            if match:
                anchor = github_anchor(match.group(2))
                count = seen.get(anchor, 0)
                seen[anchor] = count + 1
                found.add(anchor if count == 0 else f'{anchor}-{count}')
    return found


def links(path):
    """(line number, target) of every markdown link outside code."""
    with open(path, encoding='utf-8') as handle:
        text = handle.read()
    inside = False
    for number, line in enumerate(text.split('\n'), start=1):
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            for match in LINK.finditer(CODE_SPAN.sub('', line)):
                yield number, match.group(1)


def broken_links(path):
    """'file:line: target (why)' for each relative link or anchor of `path` that does not
    resolve; web addresses are not followed."""
    problems = []
    for number, target in links(path):
        if re.match(r'^[a-z][a-z0-9+.-]*:', target):          # https:, mailto:
            continue
        file_part, _, anchor = target.partition('#')
        where = osp.normpath(osp.join(osp.dirname(path), file_part)) if file_part else path
        place = f'{osp.relpath(path, ROOT)}:{number}: {target}'
        if not osp.exists(where):
            problems.append(f'{place} (no file {osp.relpath(where, ROOT)})')
        elif anchor and not where.endswith('.md'):
            problems.append(f'{place} (an anchor into a file that is not markdown)')
        elif anchor and anchor not in anchors(where):
            problems.append(f'{place} (no heading #{anchor} in {osp.relpath(where, ROOT)})')
    return problems


def test_the_guide_has_its_pages():
    names = {osp.basename(path) for path in DOCS}
    assert {'getting_started.md', 'data.md', 'models.md', 'training.md', 'distributed.md',
            'inference.md', 'dlac.md', 'troubleshooting.md'} <= names


@pytest.mark.parametrize('path', PAGES, ids=[osp.relpath(path, ROOT) for path in PAGES])
def test_every_relative_link_and_anchor_resolves(path):
    assert broken_links(path) == []


def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / 'other.md').write_text('# Other page\n\n## A section: with `code`\n')
    page = tmp_path / 'page.md'
    page.write_text('# Page\n\n## Here\n\n```\n[not a link](nowhere.md)\n```\n'
                    '[fine](other.md#a-section-with-code) [fine](#here) [web](https://x.org/#y)\n'
                    '[gone](missing.md) [bad anchor](other.md#nope) [bad here](#there)\n')
    problems = broken_links(str(page))
    assert len(problems) == 3, problems
    assert 'missing.md' in problems[0] and '#nope' in problems[1] and '#there' in problems[2]


def test_github_anchors():
    assert github_anchor('Editing `config.py`') == 'editing-configpy'
    assert github_anchor('GPUs: AMP, compile, determinism') == 'gpus-amp-compile-determinism'
    assert github_anchor('Do they model time? The time-reversed pairs') == \
        'do-they-model-time-the-time-reversed-pairs'
    assert github_anchor('Optical flow, RGB difference and two streams') == \
        'optical-flow-rgb-difference-and-two-streams'
    assert github_anchor('Kinetics-400/600/700') == 'kinetics-400600700'


def test_readme_is_a_front_page_of_at_most_250_lines():
    with open(README, encoding='utf-8') as handle:
        assert len(handle.read().splitlines()) <= 250


def test_readme_keeps_the_two_commands():
    with open(README, encoding='utf-8') as handle:
        text = handle.read()
    section = text.split('\n## Two commands\n', 1)[1].split('\n## ', 1)[0]
    block = re.search(r'```bash\n(.*?)\n```', section, re.S)
    assert block and block.group(1).split('\n') == TWO_COMMANDS


def test_readme_links_every_docs_page():
    linked = {osp.normpath(osp.join(ROOT, target.partition('#')[0]))
              for _, target in links(README) if target.partition('#')[0]}
    assert [osp.relpath(path, ROOT) for path in DOCS if path not in linked] == []


@pytest.mark.parametrize('path', DOCS, ids=[osp.relpath(path, ROOT) for path in DOCS])
def test_each_docs_page_opens_with_a_summary_and_links_back(path):
    with open(path, encoding='utf-8') as handle:
        text = handle.read()
    title, _, rest = text.partition('\n\n')
    summary = rest.split('\n\n', 1)[0]
    assert title.startswith('# ') and not summary.startswith('#'), path
    assert '](../README.md)' in summary, path


def test_your_own_videos_trains_with_the_command_the_custom_tool_prints(capsys):
    """docs/data.md's sequence and the Custom DataTool's closing hint name the same preset and
    dataset file, and the preset sets the DATASET.NAME the tool writes."""
    from DataTool.common.builder import _print_summary
    _print_summary('custom', 'data/my_videos', {1: {'train': 8, 'val': 2}}, {})
    hint = [line for line in capsys.readouterr().out.splitlines() if line.startswith('train with: ')]
    assert hint == ['train with: bash Script/run_train_dp_m.sh --cfg '
                    'experiments/custom_tsn_resnet50_rgb.yaml --cfg data/my_videos/dataset_split1.yaml']
    with open(osp.join(ROOT, 'docs', 'data.md'), encoding='utf-8') as handle:
        page = handle.read()
    assert hint[0][len('train with: '):] in page.split('\n')
