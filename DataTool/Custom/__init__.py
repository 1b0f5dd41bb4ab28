"""DataTool for Custom."""
