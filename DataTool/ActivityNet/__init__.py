"""DataTool for ActivityNet."""
