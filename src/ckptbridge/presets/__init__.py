"""Shipped rule sets, one YAML file each, loaded with ``load_rules("preset:NAME")``."""
