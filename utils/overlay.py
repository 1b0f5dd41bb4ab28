"""Drawing a prediction onto a video frame: the top classes, their scores and confidence bars,
laid out to fit any frame (portrait phone video is narrow)."""
import cv2
import numpy as np

PANEL_ALPHA = 0.6
BAR_COLOURS = ((80, 200, 80), (60, 170, 230), (200, 140, 60))     # BGR: 1st, 2nd, 3rd
FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_FONT_SCALE = 0.3         # smaller than this is unreadable: names are shortened instead
MAX_PANEL_SHARE = 0.95       # of the frame's width
ELLIPSIS = '..'              # Hershey fonts have no ellipsis character


class _Layout:
    """Font and sizes for a frame: from its shorter side (a 720 px frame gets the reference
    size), then reduced until the panel fits the width."""

    def __init__(self, scale):
        self.font_scale = 0.8 * scale
        self.thickness = max(1, round(2 * scale))
        self.pad = max(2, round(8 * scale))
        self.bar_width = max(12, round(140 * scale))
        (_, self.text_height), self.baseline = cv2.getTextSize('Ag_', FONT, self.font_scale,
                                                               self.thickness)
        # the baseline term keeps descenders and underscores inside their line
        self.line = self.text_height + self.baseline + self.pad

    def text_width(self, text):
        return cv2.getTextSize(text, FONT, self.font_scale, self.thickness)[0][0]

    def panel_width(self, texts):
        return 3 * self.pad + max(self.text_width(t) for t in texts) + self.bar_width


def _shortened(text, layout, width):
    """`text` cut (ending in '..') to at most `width` pixels."""
    if layout.text_width(text) <= width or len(text) <= len(ELLIPSIS):
        return text
    for end in range(len(text) - 1, 0, -1):
        candidate = text[:end].rstrip() + ELLIPSIS
        if layout.text_width(candidate) <= width:
            return candidate
    return ELLIPSIS


def fit_layout(width, height, parts):
    """(layout, texts as drawn) for `parts`, [(text, suffix kept whole)]: the largest font,
    from the frame's shorter side, whose panel fits MAX_PANEL_SHARE of the width; when even
    the smallest readable font does not fit, the texts are shortened before their suffix."""
    texts = [head + tail for head, tail in parts]
    scale = max(MIN_FONT_SCALE / 0.8, min(width, height) / 720.0)
    layout = _Layout(scale)
    limit = int(width * MAX_PANEL_SHARE)
    while layout.panel_width(texts) > limit and layout.font_scale > MIN_FONT_SCALE:
        scale = max(MIN_FONT_SCALE / 0.8, scale * 0.9)
        layout = _Layout(scale)
    room = limit - 3 * layout.pad - layout.bar_width
    texts = [_shortened(head, layout, max(room - layout.text_width(tail), 1)) + tail
             for head, tail in parts]
    widest = max(layout.text_width(text) for text in texts)
    if 3 * layout.pad + widest + layout.bar_width > limit:      # a very narrow frame: shorter bars
        layout.bar_width = max(0, limit - 3 * layout.pad - widest)
    return layout, texts


def draw_predictions(frame, top, caption=''):
    """Draw on a BGR uint8 frame (in place) a panel in the top-left corner: one line per
    (class name, score in 0..1) of `top`, each with a bar as long as its score; `caption`
    (the window's time span) above them. The panel fits inside the frame."""
    height, width = frame.shape[:2]
    parts = ([(caption, '')] if caption else []) + [(name, f' {score * 100:.1f}%')
                                                   for name, score in top]
    layout, texts = fit_layout(width, height, parts)
    pad, line = layout.pad, layout.line
    text_width = max(layout.text_width(text) for text in texts)
    panel_w = min(width, 3 * pad + text_width + layout.bar_width)
    panel_h = min(height, pad + line * len(texts))
    region = frame[:panel_h, :panel_w]
    region[:] = (region * (1 - PANEL_ALPHA)).astype(np.uint8)
    bar_x = 2 * pad + text_width
    for row, text in enumerate(texts):
        y = pad + row * line
        baseline_y = y + layout.text_height + pad // 2
        rank = row - (1 if caption else 0)
        colour = (200, 200, 200) if rank < 0 else (255, 255, 255)
        cv2.putText(frame, text, (pad, baseline_y), FONT, layout.font_scale, colour,
                    layout.thickness, cv2.LINE_AA)
        if rank < 0:
            continue
        score = top[rank][1]
        bar_y0, bar_y1 = y + pad // 2, y + line - pad // 2
        cv2.rectangle(frame, (bar_x, bar_y0), (bar_x + layout.bar_width, bar_y1), (90, 90, 90), 1)
        filled = int(round(layout.bar_width * float(np.clip(score, 0, 1))))
        if filled:
            cv2.rectangle(frame, (bar_x, bar_y0), (bar_x + filled, bar_y1),
                          BAR_COLOURS[min(rank, len(BAR_COLOURS) - 1)], -1)
    return frame
