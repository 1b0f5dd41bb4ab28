"""DataTool for SomethingV2."""
