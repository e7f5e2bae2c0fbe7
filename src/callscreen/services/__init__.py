"""The admin services, async, one per concern, each given a
:class:`~callscreen.services.context.Context` (settings, store, actor, clock) and
returning views (:mod:`.views`) with one JSON convention:

- :mod:`.lists` (lists), :mod:`.approvals` (entries and their life, approvals; an
  entry's history of transitions, read from the entry itself and resolved through the
  batch records: ``EntryService.transitions(list, entry)`` and, for records read
  elsewhere, ``EntryService.transitions_of(records)``),
  :mod:`.campaigns`, :mod:`.checking` (check a number as a call would be),
  :mod:`.history` (the audit trail), :mod:`.transfer` (CSV import and export),
  :mod:`.registry` (national do-not-call registries' files into a read-only list),
  :mod:`.migrations` (the stored layout's version), :mod:`.cascading` (the cascade as a
  plan, its queue and the gateway's runner); :class:`.facade.Services` holds them all;
- the store they share: :mod:`.store` (redis-py connections, errors converted),
  :mod:`.table` (lists, campaigns, batches), :mod:`.entries` (entry records, one Lua
  script), :mod:`.audit`, :mod:`.bulk` (a synchronous connection for bulk work in a
  worker thread: :mod:`.importer`, :mod:`.exporter`); :mod:`.rules` (what every service
  checks the same way).

No service starts an event loop or reads the OS user, the environment or the wall
clock by itself. May import the call path (to check a number as the gateway would),
the Asterisk side, the schema and the vocabulary; never a front end or the gateway.
"""
