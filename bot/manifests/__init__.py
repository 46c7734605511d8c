"""Manifests: rendering from blueprints and in-place editing of owned fields, one module per kind.

Nothing in this package performs git, network or Kubernetes I/O.
"""
