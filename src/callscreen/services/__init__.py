"""The admin services: lists, entries and approvals, campaigns, the audit trail,
import and export, over redis-py (:mod:`.store`, :mod:`.table`, :mod:`.entries`,
:mod:`.audit`, :mod:`.admin`, :mod:`.importer`, :mod:`.exporter`) and the cascade's
entry points (:mod:`.cascading`).

May import the call path (to check a number as the gateway would), the Asterisk side,
the schema and the vocabulary; never a front end or the gateway.
"""
