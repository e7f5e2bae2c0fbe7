"""The web console, served by ``callscreen api`` under ``/`` (the API stays under ``/api/v1``).

- :mod:`~callscreen.api.console.web`: the pages (server-rendered with Jinja2, a few
  lines of plain JS in ``static/``, no external resource), sign-in and sessions, CSRF;
- ``templates/``: the pages; autoescaping is on for every value;
- ``static/``: the style sheet and the script (live attempts, selection, upload progress).

Every operation goes through :class:`callscreen.api.backend.Backend`, bound to the
signed-in user (changes recorded as ``user:NAME``); roles are checked against the
same scopes as API keys (:mod:`callscreen.services.users`). The session cookie is
accepted here only: ``/api/v1`` takes a Bearer key and nothing else.

Part of the API front end: imports what :mod:`callscreen.api` may import.
"""
