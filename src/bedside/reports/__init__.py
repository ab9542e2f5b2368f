"""Reports for people: self-contained HTML (Jinja2 templates in ``templates/``) and JSON."""
