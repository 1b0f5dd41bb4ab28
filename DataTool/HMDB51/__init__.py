"""DataTool for HMDB51."""
