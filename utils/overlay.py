"""Drawing a prediction onto a video frame: the top classes, their scores and confidence bars."""
import cv2
import numpy as np

PANEL_ALPHA = 0.6
BAR_COLOURS = ((80, 200, 80), (60, 170, 230), (200, 140, 60))     # BGR: 1st, 2nd, 3rd


def draw_predictions(frame, top, caption=''):
    """Draw on a BGR uint8 frame (in place) a panel in the top-left corner: one line per
    (class name, score in 0..1) of `top`, each with a bar as long as its score; `caption`
    (the window's time span) above them. Sizes follow the frame height."""
    height, width = frame.shape[:2]
    scale = max(0.4, height / 720.0)
    font_scale, thickness = 0.8 * scale, max(1, round(2 * scale))
    line = max(10, round(34 * scale))
    pad = max(3, round(8 * scale))
    bar_width = max(20, round(140 * scale))
    lines = ([caption] if caption else []) + [f'{name} {score * 100:.1f}%' for name, score in top]
    text_width = max(cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)[0][0]
                     for text in lines)
    panel_w = min(width, 3 * pad + text_width + bar_width)
    panel_h = min(height, pad + line * len(lines))
    region = frame[:panel_h, :panel_w]
    region[:] = (region * (1 - PANEL_ALPHA)).astype(np.uint8)
    y = pad
    if caption:
        cv2.putText(frame, caption, (pad, y + line - pad), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (200, 200, 200), thickness, cv2.LINE_AA)
        y += line
    for rank, (name, score) in enumerate(top):
        colour = BAR_COLOURS[min(rank, len(BAR_COLOURS) - 1)]
        bar_x = 2 * pad + text_width
        bar_y0, bar_y1 = y + pad // 2, y + line - pad
        cv2.rectangle(frame, (bar_x, bar_y0), (bar_x + bar_width, bar_y1), (90, 90, 90), 1)
        filled = int(round(bar_width * float(np.clip(score, 0, 1))))
        if filled:
            cv2.rectangle(frame, (bar_x, bar_y0), (bar_x + filled, bar_y1), colour, -1)
        cv2.putText(frame, f'{name} {score * 100:.1f}%', (pad, y + line - pad),
                    cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thickness, cv2.LINE_AA)
        y += line
    return frame
