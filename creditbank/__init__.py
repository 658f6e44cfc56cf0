"""creditbank: a learning-credit bank and credential verification service."""

__version__ = "0.1.0"
