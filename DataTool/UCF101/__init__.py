"""DataTool for UCF101."""
