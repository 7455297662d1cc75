"""ctl: the contact center controller."""

__version__ = "0.1.0"
