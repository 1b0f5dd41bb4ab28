"""Helpers every dataset tool shares: video writing, frame extraction, metafile writing."""
