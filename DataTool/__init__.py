"""Dataset preparation tools: official annotations + videos -> metafiles (+ frames)."""
