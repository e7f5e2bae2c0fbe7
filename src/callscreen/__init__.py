"""callscreen: a call-screening gateway for Asterisk."""

__version__ = "0.1.0"
