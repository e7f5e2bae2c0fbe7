"""The HTTP API (``callscreen api``): FastAPI on uvicorn, a process apart from the
gateway so that no API load reaches the call path.

- :mod:`~callscreen.api.app` builds the application: routers under ``/api/v1``,
  OpenAPI at ``/api/v1/openapi.json``, interactive docs at ``/api/docs``;
- :mod:`~callscreen.api.backend` is the one module that calls the services: every
  route goes through it, so no rule is written twice;
- :mod:`~callscreen.api.problems` maps the one error tree to HTTP statuses in one
  table and answers RFC 9457 problem details;
- :mod:`~callscreen.api.auth` checks Bearer keys and scopes
  (:mod:`callscreen.services.apikeys`) and rate-limits failed authentications;
- :mod:`~callscreen.api.server` runs uvicorn (uvloop, httptools).

A front end: may import every package below it (gateway, reports, services, call
path, schema, core); only the CLI imports it (to run ``callscreen api``).
"""
