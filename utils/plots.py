"""PNG figures people would rather look at than numbers."""
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
    """Training loss and validation top1 (raw and EMA weights) per epoch from the training-
    policy records, and `lr_curve` [(epoch, lr)] per iteration when given."""
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
    val = [(row['epoch'], row['val_top1']) for row in history if row.get('val_top1') is not None]
    if val:
        right.plot([e for e, _ in val], [v for _, v in val], marker='o', color='tab:green')
    ema = [(row['epoch'], row['val_top1_ema']) for row in history if row.get('val_top1_ema') is not None]
    if ema:
        right.plot([e for e, _ in ema], [v for _, v in ema], marker='s', color='tab:olive')
    right.plot(epochs, [row['train_top1'] for row in history], marker='.', color='tab:blue',
               alpha=0.6)
    right.legend((['val top1'] if val else []) + (['val top1, EMA weights'] if ema else []) + ['train top1'])
    right.set_xlabel('epoch')
    right.set_ylabel('top1 (%)')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
