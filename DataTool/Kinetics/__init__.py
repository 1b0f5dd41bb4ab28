"""DataTool for Kinetics."""
