"""Manifests: one YAML file per published branch, loaded into a validated, immutable model."""
