"""releasebot: GitOps pull requests for ML model releases.

The package is laid out as a pure core (``catalog``, ``plan``, ``manifests``) with one adapter
module per external system around it; ``cli`` is a thin shell on top.
"""

__version__ = "0.1.0"
