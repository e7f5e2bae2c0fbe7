"""callscreen: a call-screening gateway for Asterisk.

Packages by role (``docs/architecture.md`` draws the arrows between them):
:mod:`.core` (vocabulary), :mod:`.schema` (Redis layout), :mod:`.callpath` (FastAGI,
screener, lean Redis client), :mod:`.asterisk` (AMI, call files, cascade),
:mod:`.services` (admin), :mod:`.reports`, :mod:`.gateway` (``callscreen serve``) and
:mod:`.cli`.
"""

__version__ = "0.1.0"
