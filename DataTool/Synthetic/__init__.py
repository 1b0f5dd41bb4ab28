"""A rendered action dataset that needs no download: see synthetic.py."""
