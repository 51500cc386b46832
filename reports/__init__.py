"""HTML reports rendered from run directories (jinja2 + matplotlib)."""
