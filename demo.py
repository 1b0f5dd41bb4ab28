"""Run a trained DLAC model over any video and write an annotated copy, or over live video:
    python demo.py --video PATH [--checkpoint PATH | --onnx export/model.onnx]
                   [--window FRAMES] [--stride FRAMES] [--topk 3] [--cfg FILE ...] [KEY VALUE ...]
    python demo.py --stream SOURCE [--realtime] [--show] [--save-video] [--max-seconds S] ...

The model sees sliding windows of the video, each prepared like one test view in evaluation.
Every frame of demo/output.avi (MJPEG; the input as a player shows it: turned by its display
rotation, same size, frame count and frame rate; a variable frame rate input is resampled to a
constant rate that keeps each frame's time, said in the log) shows the top classes of the
window centred nearest to it, with scores and confidence bars; demo/predictions.json lists
every window's start/end time (from the frames' timestamps) and top classes. With --onnx, the
exported model runs in onnxruntime and its meta.json says how to prepare the input.

--stream SOURCE (a webcam index, an rtsp:// udp:// http(s):// ... URL, or a file, which
--realtime paces at its frame rate) scores frames as they come (utils/live_stream.py): an
online TSM (MODEL.TSM_SHIFT online, or its exported model_online.onnx) every frame, any other
model sliding windows every --stride frames; demo/stream.jsonl gets each result with its
latency, --save-video an annotated output.avi, --show a window.
"""
import json
import os
import os.path as osp
import sys

import av
import numpy as np

from config import (build_parser, class_names_of, default_checkpoint, exp_dir, log_resolution, parse_config,
                    trained_source)
from datasets import DatasetConfigError
from datasets.clip_spec import ClipSpec
from datasets.video_probe import probe_video
from datasets.video_reader import decode_timed_frames
from models.online_tsm import OnlineRunner, OnnxOnlineStep, TorchOnlineStep
from utils.cli import run_entry_point
from utils.device import set_cpu_threads
from utils.exported_model import TorchPredictor, load_exported
from utils.live_stream import FrameByFrame, SlidingWindow, run_stream
from utils.logger import setup_logger
from utils.overlay import draw_predictions
from utils.stream_source import FrameReader, open_source
from utils.trained_model import load_model
from utils.untrimmed import (merge_segments, nearest_window, predict_windows, save_timeline_png,
                             window_plan)
from utils.whole_video import ShortVideoWarning, constant_rate_for, read_whole_video, resample_plan


# ---------------------------------------------------------------- output
def write_annotated(video, out_path, rate, plan, labels, assignment):
    """Re-decode the input upright and write each frame with its window's overlay (MJPEG AVI
    at a constant `rate`): output frame k shows source frame plan[k], so the output keeps the
    source's timing; returns the number of frames written."""
    partial = out_path + '.part.avi'
    count = 0
    try:
        with av.open(partial, 'w') as container:
            stream = container.add_stream('mjpeg', rate=rate)
            stream.pix_fmt, stream.options = 'yuvj420p', {'q:v': '3'}
            repeats = np.bincount(plan, minlength=len(assignment))
            for index, (_, frame) in enumerate(decode_timed_frames(video, fmt='bgr24')):
                if index >= len(repeats) or not repeats[index]:
                    continue
                if not count:
                    stream.height, stream.width = frame.shape[:2]
                top, caption = labels[assignment[min(index, len(assignment) - 1)]]
                picture = av.VideoFrame.from_ndarray(draw_predictions(frame, top, caption),
                                                     format='bgr24')
                for _ in range(repeats[index]):
                    for packet in stream.encode(picture):
                        container.mux(packet)
                    count += 1
            for packet in stream.encode():
                container.mux(packet)
        os.replace(partial, out_path)
    finally:
        if osp.exists(partial):
            os.remove(partial)
    return count


def output_timing(video, logger):
    """(constant output rate, which source frame each output frame shows): the source's own
    rate and frames for an evenly timed video; for a variable-rate one, a constant rate
    that keeps every frame's time (stated in the log)."""
    rate = constant_rate_for(video.times, video.info.fps)
    plan = resample_plan(video.times, rate) if video.variable_rate else np.arange(len(video.frames))
    if video.variable_rate:
        steps = np.diff(video.times)
        logger.info('variable frame rate (%.1f to %.1f fps): output.avi resampled to a constant '
                    '%.3f fps, %d frames, each shown at its own time', 1 / steps.max(),
                    1 / max(steps.min(), 1e-6), float(rate), len(plan))
    return rate, plan


def describe_windows(video, scores, starts, window, names, topk):
    """(predictions.json's windows, the overlay's (top, caption) per window), with each
    window's times from its frames' timestamps."""
    windows, labels = [], []
    for start, row in zip(starts, scores):
        best = np.argsort(-row)[:topk]
        top = [(names[i], float(row[i])) for i in best]
        span = video.span(start, start + window)
        windows.append({'start_frame': int(start), 'end_frame': int(start + window),
                        'start_time': round(span[0], 3), 'end_time': round(span[1], 3),
                        'top': [{'class': name, 'index': int(i), 'score': round(score, 5)}
                                for (name, score), i in zip(top, best)]})
        labels.append((top, f'{span[0]:.1f}-{span[1]:.1f} s'))
    return windows, labels


def run_demo(cfg, video, checkpoint=None, onnx_path=None, window=0, stride=0, topk=3,
             out_dir=None, timeline=False):
    """Predict over `video` and write output.avi and predictions.json (with `timeline`, also
    timeline.png and segments.json); returns the predictions."""
    folder = exp_dir(cfg)
    logger = setup_logger(osp.join(folder, 'log'), filename='demo.log')
    log_resolution(cfg, logger)
    set_cpu_threads(cfg.NUM_THREADS)
    info = probe_video(video)              # a file that is no usable video: said before loading
    if onnx_path:
        predictor, spec, names = load_exported(onnx_path)
        source = osp.abspath(onnx_path)
        out_dir = out_dir or osp.join(osp.dirname(osp.dirname(source)), 'demo')
    else:
        checkpoint = checkpoint or default_checkpoint(cfg)
        model, _ = load_model(cfg, checkpoint, logger)
        predictor, spec, names = TorchPredictor(model), ClipSpec.from_config(cfg), class_names_of(cfg)
        source = osp.abspath(checkpoint)
        out_dir = out_dir or osp.join(folder, 'demo')
    if spec.modality == 'Flow':
        raise DatasetConfigError('demo.py runs RGB and RGBDiff models on video frames; a Flow model '
                                 'needs optical flow frames (extract them with a DataTool --flow)')
    clip = read_whole_video(video, spec, logger, info=info)
    ShortVideoWarning(logger, spec.min_frames).check(video, len(clip.frames))
    window, stride = window_plan(len(clip.frames), spec, window, stride)
    scores, starts = predict_windows(clip.frames, spec, predictor, window, stride)
    logger.info('%d windows of %d frames every %d', len(starts), window, stride)
    topk = min(topk, len(names))
    windows, labels = describe_windows(clip, scores, starts, window, names, topk)
    os.makedirs(out_dir, exist_ok=True)
    out_video = osp.join(out_dir, 'output.avi')
    rate, plan = output_timing(clip, logger)
    written = write_annotated(video, out_video, rate, plan, labels,
                              nearest_window(len(clip.frames), starts, window))
    result = {'video': osp.abspath(video), 'model': source, 'fps': float(info.fps),
              'variable_frame_rate': clip.variable_rate, 'output_fps': float(rate),
              'rotation': info.rotation, 'frames': len(clip.frames), 'output_frames': written,
              'width': info.width, 'height': info.height, 'window': window,
              'stride': stride, 'windows': windows}
    with open(osp.join(out_dir, 'predictions.json'), 'w', encoding='utf-8') as handle:
        json.dump(result, handle, indent=2)
    if timeline:
        segments = merge_segments(scores, starts, window, clip.times, names)
        with open(osp.join(out_dir, 'segments.json'), 'w', encoding='utf-8') as handle:
            json.dump({'video': osp.abspath(video), 'fps': float(info.fps), 'window': window,
                       'stride': stride, 'segments': segments}, handle, indent=2)
        save_timeline_png(scores, starts, window, clip.times, names, segments,
                          osp.join(out_dir, 'timeline.png'))
        result['segments'] = segments
        logger.info('timeline: %d segments (%s) -> timeline.png, segments.json', len(segments),
                    ', '.join(f"{s['class']} {s['start_time']:.1f}-{s['end_time']:.1f} s"
                              for s in segments[:8]))
    overall = scores.mean(axis=0)
    logger.info('wrote %s (%d frames) and predictions.json; whole video: %s', out_video, written,
                ', '.join(f'{names[i]} {overall[i] * 100:.1f}%' for i in np.argsort(-overall)[:topk]))
    return result


def stream_scorer(cfg, checkpoint, onnx_path, window, stride, average, logger):
    """(scorer, ClipSpec, class names, model file): an online TSM frame by frame, any other
    model in sliding windows of `window` frames every `stride`."""
    if onnx_path:
        predictor, spec, names = load_exported(onnx_path)
        model_file, online = osp.abspath(onnx_path), None
        if len(predictor.session.get_inputs()) > 1:      # model_online.onnx: frame + caches
            online = OnnxOnlineStep(predictor.session)
    else:
        model_file = checkpoint or default_checkpoint(cfg)
        model, _ = load_model(cfg, model_file, logger)
        predictor, spec, names = TorchPredictor(model), ClipSpec.from_config(cfg), class_names_of(cfg)
        online = TorchOnlineStep(model) if getattr(model, 'shift_mode', None) == 'online' else None
    if spec.modality != 'RGB':
        raise DatasetConfigError(f'demo.py --stream runs RGB models (this one takes {spec.modality})')
    if online is not None:
        average = average or spec.frames
        logger.info('online TSM: every frame scored, logits averaged over the last %d', average)
        return (FrameByFrame(OnlineRunner(online, average, cfg.MODEL.CONSENSUS), spec), spec, names,
                model_file)
    window = window or spec.default_window
    stride = max(1, stride or window // 2)
    logger.info('sliding windows of %d frames every %d frames', window, stride)
    return SlidingWindow(predictor, spec, window, stride), spec, names, model_file


def run_stream_demo(cfg, source, checkpoint=None, onnx_path=None, window=0, stride=0, topk=3,
                    out_dir=None, realtime=False, show=False, save_video=False, max_seconds=0.0,
                    average=0, open_timeout=10.0, read_timeout=5.0):
    """Score live frames from `source` until it ends (or max_seconds, Ctrl-C, SIGTERM);
    writes stream.jsonl (and output.avi) in out_dir; returns the summary."""
    folder = exp_dir(cfg)
    logger = setup_logger(osp.join(folder, 'log'), filename='demo.log')
    log_resolution(cfg, logger)
    set_cpu_threads(cfg.NUM_THREADS)
    scorer, spec, names, model_file = stream_scorer(cfg, checkpoint, onnx_path, window, stride,
                                                    average, logger)
    out_dir = out_dir or osp.join(folder, 'demo')
    logger.info('opening %s', source)
    scorer.warm_up(spec.resize(np.zeros((1, spec.crop_size, spec.crop_size, 3), np.uint8))[0])
    kind, frames, rate = open_source(source, open_timeout, read_timeout)
    live = kind != 'file' or realtime
    reader = FrameReader(frames, spec.resize, live=live, realtime=realtime and kind == 'file',
                         keep_image=save_video or show).start()
    logger.info('streaming %s (%s%s) -> %s', source, kind, ', live' if live else ', every frame',
                osp.join(out_dir, 'stream.jsonl'))
    summary = run_stream(reader, scorer, names, out_dir, logger, topk=topk, rate=rate,
                         save_video=save_video, show=show, max_seconds=max_seconds)
    summary.update(source=source, model=model_file)
    return summary


def main(argv=None):
    parser = build_parser('Run a DLAC model over a video and write an annotated copy')
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument('--video', help='input video: any file FFmpeg reads (mp4, mov, mkv, avi, webm, ts, ...)')
    inputs.add_argument('--stream', metavar='SOURCE',
                        help='live video: a webcam index (0), a stream URL (rtsp://, udp://, '
                             'http(s)://, ...) or a file; results go to demo/stream.jsonl')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--checkpoint', default=None,
                        help='checkpoint to run (default: <experiment>/checkpoints/best.pth)')
    source.add_argument('--onnx', default=None, help='an exported model.onnx (with its meta.json)')
    parser.add_argument('--window', type=int, default=0,
                        help="frames per window (0: the model's clip span, or 2 frames a segment)")
    parser.add_argument('--stride', type=int, default=0, help='frames between windows (0: window/2)')
    parser.add_argument('--topk', type=int, default=3, help='classes shown per window')
    parser.add_argument('--out', default=None, help='output folder (default: <experiment>/demo)')
    parser.add_argument('--timeline', action='store_true',
                        help='also timeline.png (classes over time) and segments.json (runs of '
                             'windows of one class, with start, end and score)')
    live = parser.add_argument_group('--stream')
    live.add_argument('--realtime', action='store_true',
                      help='a file source: released at its own frame rate, like a camera')
    live.add_argument('--show', action='store_true', help='a window with the results (needs a display)')
    live.add_argument('--save-video', action='store_true', help='also demo/output.avi, annotated')
    live.add_argument('--max-seconds', type=float, default=0.0, help='stop after this much of the stream')
    live.add_argument('--average', type=int, default=0,
                      help="online TSM: average the logits of the last N frames (0: the model's segments)")
    live.add_argument('--open-timeout', type=float, default=10.0, help='seconds to wait for a stream to start')
    live.add_argument('--read-timeout', type=float, default=5.0,
                      help='a stream silent this long has ended')
    cfg, args = parse_config(argv, parser=parser, exp_type='E',
                             trained=trained_source)
    if args.window < 0 or args.stride < 0 or args.topk < 1 or args.average < 0:
        parser.error('--window, --stride and --average must be >= 0 and --topk >= 1')
    if args.stream is not None:
        return run_entry_point(run_stream_demo, cfg, args.stream, args.checkpoint, args.onnx,
                               args.window, args.stride, args.topk, args.out, args.realtime,
                               args.show, args.save_video, args.max_seconds, args.average,
                               args.open_timeout, args.read_timeout)
    return run_entry_point(run_demo, cfg, args.video, args.checkpoint, args.onnx, args.window,
                           args.stride, args.topk, args.out, args.timeline)


if __name__ == '__main__':
    sys.exit(main())
