"""Accuracy, confusion matrix and per-class statistics on score arrays."""
import numpy as np


def topk_correct(logits, labels, ks=(1, 5)):
    """Number of samples whose label is among the top-k predictions, for each k."""
    maxk = min(max(ks), logits.shape[1])
    top = logits.topk(maxk, dim=1).indices
    hits = top.eq(labels.view(-1, 1))
    return [int(hits[:, :min(k, maxk)].any(dim=1).sum()) for k in ks]


def topk_accuracy(scores, labels, k):
    """Top-k accuracy in percent from numpy scores [N, K] and labels [N]."""
    if len(labels) == 0:
        return 0.0
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean() * 100.0)


def confusion_matrix(predictions, labels, num_classes):
    """matrix[true, predicted] counts."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_accuracy(matrix):
    """Recall of each class in percent; NaN for classes without samples."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1) * 100.0, np.nan)


def mean_class_accuracy(matrix):
    accuracies = per_class_accuracy(matrix)
    return float(np.nanmean(accuracies)) if np.isfinite(accuracies).any() else 0.0


def summarize(scores, labels, num_classes):
    """The metrics every evaluation reports, from averaged scores [N, K] and labels [N]."""
    predictions = scores.argmax(axis=1)
    matrix = confusion_matrix(predictions, labels, num_classes)
    picked = scores[np.arange(len(labels)), labels]
    return {
        'top1': topk_accuracy(scores, labels, 1),
        'top5': topk_accuracy(scores, labels, 5),
        'mean_class_accuracy': mean_class_accuracy(matrix),
        'nll': float(-np.log(np.clip(picked, 1e-12, None)).mean()) if len(labels) else 0.0,
        'num_videos': int(len(labels)),
        'confusion': matrix,
    }


def average_precision(scores, positives):
    """Non-interpolated AP of one class as the ActivityNet challenge computes it: videos ranked
    by score, precision taken at each positive, averaged over the positives; None without
    positives."""
    if not positives.any():
        return None
    ranked = positives[np.argsort(-scores, kind='stable')]
    hits = np.cumsum(ranked)
    precision = hits / np.arange(1, len(ranked) + 1)
    return float(precision[ranked].sum() / ranked.sum())


def mean_average_precision(scores, labels):
    """mAP in percent over the classes that have videos (untrimmed classification)."""
    values = [average_precision(scores[:, c], labels == c) for c in range(scores.shape[1])]
    values = [v for v in values if v is not None]
    return float(np.mean(values) * 100.0) if values else 0.0
