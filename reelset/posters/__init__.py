"""Posters: download, verify, content-addressed files, and the audit of those files."""
