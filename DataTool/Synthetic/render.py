"""Rendering the synthetic actions as RGB frames.

Classes come in time-reversed pairs (move left/right, grow/shrink, rotate clockwise/
counter-clockwise): a pair's two classes draw their start and end states from the same
distribution, so the set of frames is identical in distribution and only frame *order*
tells them apart. Two more classes (bounce, blink) look the same played backwards, and each
motion family has its own shape, so a frame-order-blind model (TSN with average consensus)
recognises the family but stays at chance within a pair. Each family also has its own hue
range, so the family is quick to learn from scratch on a CPU.
"""
import cv2
import numpy as np

CLASS_NAMES = (
    'move_left', 'move_right',
    'grow', 'shrink',
    'rotate_clockwise', 'rotate_counterclockwise',
    'bounce', 'blink',
)
TIME_REVERSED_PAIRS = ((0, 1), (2, 3), (4, 5))
HEIGHT, WIDTH = 128, 170
# the action stays inside this central band, so a centre crop of the short side keeps it
LEFT, RIGHT = 32, 138


def _background(rng):
    """A static dark textured background (a plain one would let codecs drop all detail)."""
    base = rng.integers(10, 70, size=3)
    ramp = np.linspace(0.0, 1.0, WIDTH)[None, :, None] * rng.integers(0, 40, size=3)
    noise = rng.normal(0.0, 6.0, size=(HEIGHT, WIDTH, 1))
    return np.clip(base + ramp + noise, 0, 255).astype(np.uint8)


# OpenCV hue (0-180) of each motion family: appearance names the family, as objects do in
# real action datasets, while only frame order names the class within a pair
FAMILY_HUES = {'move': 0, 'grow': 60, 'shrink': 60, 'rotate': 115, 'bounce': 25, 'blink': 150}


def _colour(name, rng):
    """A bright colour near the family's hue."""
    hue = (FAMILY_HUES[name.split('_')[0]] + rng.integers(-8, 9)) % 180
    hsv = np.array([[[hue, rng.integers(170, 256), rng.integers(200, 256)]]], dtype=np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _square(frame, centre, side, colour):
    x, y = centre
    half = side / 2.0
    cv2.rectangle(frame, (int(x - half), int(y - half)), (int(x + half), int(y + half)), colour, -1)


def _bar(frame, centre, length, angle, colour, thickness):
    dx, dy = np.cos(angle) * length / 2.0, np.sin(angle) * length / 2.0
    x, y = centre
    cv2.line(frame, (int(x - dx), int(y - dy)), (int(x + dx), int(y + dy)), colour, thickness,
             cv2.LINE_AA)


def _triangle(frame, centre, side, colour):
    x, y = centre
    h = side * 0.866
    points = np.array([[x, y - 2 * h / 3], [x - side / 2, y + h / 3], [x + side / 2, y + h / 3]])
    cv2.fillPoly(frame, [points.astype(np.int32)], colour, cv2.LINE_AA)


def render_clip(label, num_frames, rng):
    """Frames [num_frames, HEIGHT, WIDTH, 3] uint8 RGB of class `label`."""
    name = CLASS_NAMES[label]
    background = _background(rng)
    colour = _colour(name, rng)
    t = np.linspace(0.0, 1.0, num_frames)
    frames = np.repeat(background[None], num_frames, axis=0)
    if name in ('move_left', 'move_right'):
        side = rng.uniform(16, 22)
        travel = rng.uniform(50, 80)
        a = rng.uniform(LEFT + side / 2, RIGHT - side / 2 - travel)
        start, end = (a, a + travel) if name == 'move_right' else (a + travel, a)
        y = rng.uniform(side, HEIGHT - side)
        for frame, step in zip(frames, t):
            _square(frame, (start + (end - start) * step, y), side, colour)
    elif name in ('grow', 'shrink'):
        small, large = rng.uniform(5, 9), rng.uniform(28, 38)
        start, end = (small, large) if name == 'grow' else (large, small)
        centre = (rng.uniform(LEFT + large, RIGHT - large), rng.uniform(large, HEIGHT - large))
        for frame, step in zip(frames, t):
            radius = start + (end - start) * step
            cv2.circle(frame, (int(centre[0]), int(centre[1])), int(round(radius)), colour, -1,
                       cv2.LINE_AA)
    elif name in ('rotate_clockwise', 'rotate_counterclockwise'):
        theta0 = rng.uniform(0, 2 * np.pi)
        span = rng.uniform(np.pi * 0.7, np.pi * 1.1)
        sign = 1.0 if name == 'rotate_clockwise' else -1.0   # image y points down
        length, thickness = rng.uniform(60, 80), int(rng.integers(6, 10))
        half = length / 2 + thickness
        centre = (rng.uniform(LEFT + half, RIGHT - half), rng.uniform(half, HEIGHT - half))
        for frame, step in zip(frames, t):
            _bar(frame, centre, length, theta0 + sign * span * step, colour, thickness)
    elif name == 'bounce':
        side = rng.uniform(20, 28)
        x = rng.uniform(LEFT + side / 2, RIGHT - side / 2)
        periods, phase = rng.uniform(1.5, 2.5), rng.uniform(0, 2 * np.pi)
        for frame, step in zip(frames, t):
            y = HEIGHT / 2 + (HEIGHT / 2 - side) * np.sin(2 * np.pi * periods * step + phase)
            _triangle(frame, (x, y), side, colour)
    elif name == 'blink':
        radius, period = int(rng.uniform(14, 22)), int(rng.integers(4, 8))
        centre = (int(rng.uniform(LEFT + radius + 3, RIGHT - radius - 3)),
                  int(rng.uniform(radius + 3, HEIGHT - radius - 3)))
        offset = int(rng.integers(period))
        for index, frame in enumerate(frames):
            if ((index + offset) // (period // 2 or 1)) % 2 == 0:
                cv2.circle(frame, centre, radius, colour, 5, cv2.LINE_AA)
    else:
        raise ValueError(f'no renderer for class {name!r}')
    return frames


def pair_report(confusion, class_names=CLASS_NAMES):
    """How a model does on the time-reversed pairs versus the other classes, or None when
    `class_names` (the evaluated set's, from classInd.txt, in label order) are not the synthetic
    set's classes: the pairs are found by name, whatever their label numbers.

    `paired_top1` = top1 over the videos of paired classes (the proof that a model sees time),
    `non_paired_top1` = top1 over the others. For each pair: `family_accuracy` = predicted as either class of the pair (appearance is
    enough), `within_pair_accuracy` = correct among those (needs frame order; chance is 50%).
    """
    import numpy as np  # local: keeps the renderer's import list minimal

    if sorted(class_names) != sorted(CLASS_NAMES) or len(class_names) != confusion.shape[0]:
        return None
    label = {name: index for index, name in enumerate(class_names)}
    report = {'pairs': {}}
    paired = set()
    for first, second in TIME_REVERSED_PAIRS:
        a, b = label[CLASS_NAMES[first]], label[CLASS_NAMES[second]]
        block = confusion[np.ix_([a, b], [a, b])]
        total = confusion[[a, b]].sum()
        in_family = block.sum()
        report['pairs'][f'{CLASS_NAMES[first]}/{CLASS_NAMES[second]}'] = {
            'family_accuracy': float(in_family / total * 100) if total else None,
            'within_pair_accuracy': float(np.trace(block) / in_family * 100) if in_family else None,
        }
        paired.update((a, b))
    paired = sorted(paired)
    paired_total = confusion[paired].sum()
    report['paired_top1'] = (float(sum(confusion[c, c] for c in paired) / paired_total * 100)
                             if paired_total else None)
    others = [c for c in range(len(class_names)) if c not in paired]
    other_total = confusion[others].sum()
    report['non_paired_top1'] = (float(sum(confusion[c, c] for c in others) / other_total * 100)
                                 if other_total else None)
    within = [p['within_pair_accuracy'] for p in report['pairs'].values()
              if p['within_pair_accuracy'] is not None]
    report['mean_within_pair_accuracy'] = float(np.mean(within)) if within else None
    return report
