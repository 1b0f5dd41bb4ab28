"""Running a model over a loader and collecting per-video scores (validation and testing)."""
import numpy as np
import torch

from .progress import progress


@torch.no_grad()
def collect_scores(model, loader, device, desc='eval'):
    """Softmax scores averaged over each video's views.

    Batches are [B, C, T, H, W] (one view) or [B, V, C, T, H, W] (multi-view testing).
    Returns (scores [N, K] float32, labels [N], dataset indices [N]) in dataset order.
    """
    model.eval()
    all_scores, all_labels, all_indices = [], [], []
    for clips, labels, indices in progress(loader, desc=desc):
        clips = clips.to(device, non_blocking=True)
        views = 1
        if clips.dim() == 6:
            views = clips.shape[1]
            clips = clips.flatten(0, 1)
        probs = torch.softmax(model(clips).float(), dim=1)
        all_scores.append(probs.view(-1, views, probs.shape[1]).mean(dim=1).cpu())
        all_labels.append(labels)
        all_indices.append(indices)
    scores = torch.cat(all_scores).numpy()
    labels = torch.cat(all_labels).numpy()
    indices = torch.cat(all_indices).numpy()
    order = np.argsort(indices, kind='stable')
    return scores[order], labels[order], indices[order]
