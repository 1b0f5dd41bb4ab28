"""PNG figures people would rather look at than numbers."""
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_confusion_png(matrix, class_names, path, title='Confusion matrix'):
    """Row-normalised confusion matrix with counts, true class on the rows."""
    num = len(class_names)
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = matrix / np.maximum(totals, 1)
    size = max(5.0, 0.45 * num + 2.5)
    fig, axis = plt.subplots(figsize=(size, size))
    image = axis.imshow(normalised, cmap='Blues', vmin=0.0, vmax=1.0)
    axis.set_xticks(range(num))
    axis.set_yticks(range(num))
    axis.set_xticklabels(class_names, rotation=60, ha='right', fontsize=8)
    axis.set_yticklabels(class_names, fontsize=8)
    axis.set_xlabel('predicted')
    axis.set_ylabel('true')
    axis.set_title(title)
    if num <= 30:
        for row in range(num):
            for col in range(num):
                if matrix[row, col]:
                    colour = 'white' if normalised[row, col] > 0.5 else 'black'
                    axis.text(col, row, str(matrix[row, col]), ha='center', va='center',
                              fontsize=7, color=colour)
    fig.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_curves_png(history, path, lr_curve=None):
    """Training loss and validation top1 (raw and EMA weights; pre-training: the validation
    reconstruction loss) per epoch from the training-policy records, and `lr_curve`
    [(epoch, lr)] per iteration when given."""
    epochs = [row['epoch'] for row in history]
    fig, axes = plt.subplots(1, 3 if lr_curve else 2, figsize=(15 if lr_curve else 10, 4))
    left, right = axes[0], axes[1]
    if lr_curve:
        axes[2].plot([e for e, _ in lr_curve], [lr for _, lr in lr_curve], color='tab:red')
        axes[2].set_xlabel('epoch')
        axes[2].set_ylabel('learning rate (per iteration)')
    left.plot(epochs, [row['train_loss'] for row in history], marker='o')
    left.set_xlabel('epoch')
    left.set_ylabel('train loss')
    if any('val_loss' in row for row in history):        # pre-training: no accuracy
        _plot_series(right, history, (('train_loss', 'train loss', '.', 'tab:blue'),
                                      ('val_loss', 'validation loss', 'o', 'tab:green'),
                                      ('val_loss_ema', 'validation loss, EMA weights', 's', 'tab:olive')))
        right.set_ylabel('reconstruction loss (masked tubelets)')
    else:
        _plot_series(right, history, (('val_top1', 'val top1', 'o', 'tab:green'),
                                      ('val_top1_ema', 'val top1, EMA weights', 's', 'tab:olive'),
                                      ('train_top1', 'train top1', '.', 'tab:blue')))
        right.set_ylabel('top1 (%)')
    right.set_xlabel('epoch')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_series(axis, history, series):
    """Each (key, label, marker, colour) of `series` that the history records, per epoch."""
    labels = []
    for key, label, marker, colour in series:
        points = [(row['epoch'], row[key]) for row in history if row.get(key) is not None]
        if points:
            axis.plot([e for e, _ in points], [v for _, v in points], marker=marker, color=colour)
            labels.append(label)
    axis.legend(labels)


def masked_view(pixels, mask, grey=0.5):
    """What the encoder is shown: `pixels` [K, 3, T, H, W] with the masked 2x16x16 tubelets
    (`mask` [K, tokens], True = masked) painted `grey`."""
    clips, _, frames, height, width = pixels.shape
    grid = mask.reshape(clips, -1, height // 16, width // 16).to(pixels.dtype)
    hidden = grid.repeat_interleave(frames // grid.shape[1], 1).repeat_interleave(16, 2).repeat_interleave(16, 3)
    return pixels * (1 - hidden[:, None]) + grey * hidden[:, None]


def save_reconstruction_png(pixels, mask, reconstruction, path, title='', max_frames=8):
    """Masked-autoencoder pre-training, as a person checks it: for each clip a row of its
    frames, the same frames with the masked tubelets greyed out, and the model's
    reconstruction (visible tubelets as they are, masked ones predicted). `pixels` and
    `reconstruction` [K, 3, T, H, W] in [0, 1], `mask` [K, tokens] (True = masked, tokens in
    the patch embedding's time, row, column order). Writes the PNG and returns it as an
    [H, W, 3] uint8 array (for TensorBoard)."""
    clips, frames = pixels.shape[0], pixels.shape[2]
    masked = masked_view(pixels, mask)
    shown = np.unique(np.linspace(0, frames - 1, min(frames, max_frames)).round().astype(int))
    rows = [(name, images) for clip in range(clips)
            for name, images in ((f'clip {clip + 1}', pixels[clip]), ('masked', masked[clip]),
                                 ('reconstruction', reconstruction[clip]))]
    fig, axes = plt.subplots(len(rows), len(shown), figsize=(1.6 * len(shown), 1.6 * len(rows)),
                             squeeze=False)
    for row, (name, images) in enumerate(rows):
        for column, frame in enumerate(shown):
            axis = axes[row][column]
            axis.imshow(images[:, frame].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(name, fontsize=8)
            if row == 0:
                axis.set_title(f'frame {frame + 1}', fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    fig.savefig(path, dpi=100)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def save_per_class_accuracy_png(accuracies, class_names, path, title='Per-class accuracy'):
    """Horizontal bars of each class's accuracy (%), worst class at the top, so the classes
    that need attention are read first; classes without videos (NaN) are left out. Returns
    the class names in the order drawn, top to bottom."""
    shown = [index for index in np.argsort(accuracies, kind='stable') if not np.isnan(accuracies[index])]
    names = [class_names[index] for index in shown]
    values = [float(accuracies[index]) for index in shown]
    fig, axis = plt.subplots(figsize=(8, max(2.5, 0.22 * len(shown) + 1.2)))
    bars = axis.barh(range(len(shown)), values, color='tab:blue')
    axis.bar_label(bars, labels=[f'{value:.0f}' for value in values], fontsize=7, padding=2)
    axis.set_yticks(range(len(shown)))
    axis.set_yticklabels(names, fontsize=8)
    axis.invert_yaxis()                 # the first (worst) class on top
    axis.set_xlim(0, 108)
    axis.set_xlabel('accuracy (%)')
    axis.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return names


def save_frame_strip_png(clip, path, height=72, max_frames=16):
    """One clip's frames side by side, `height` pixels tall: `clip` [C, T, H, W] uint8 as the
    dataset returns it (RGB; another channel count, optical flow say, shows its first channel
    in grey). More than `max_frames` frames are thinned evenly. Returns the number shown."""
    import cv2
    frames = np.asarray(clip)
    if frames.dtype != np.uint8:
        frames = np.clip(frames, 0, 255).astype(np.uint8)
    if frames.shape[0] != 3:
        frames = np.repeat(frames[:1], 3, axis=0)
    count = frames.shape[1]
    shown = np.unique(np.linspace(0, count - 1, min(count, max_frames)).round().astype(int))
    width = max(1, round(frames.shape[3] * height / frames.shape[2]))
    tiles = [cv2.resize(np.ascontiguousarray(frames[:, index].transpose(1, 2, 0)), (width, height),
                        interpolation=cv2.INTER_AREA) for index in shown]
    gap = np.full((height, 2, 3), 255, dtype=np.uint8)
    strip = np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
        raise OSError(f'could not write {path}')
    return len(shown)
