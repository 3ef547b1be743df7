"""xsabot: keeps XSA-only branches of Xen release lines, declaratively."""

__version__ = "0.1.0"
