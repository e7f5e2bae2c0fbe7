"""Reports over the attempt log: the figures (:mod:`.report`) and their rendering as
tables, CSV, JSON and HTML (:mod:`.render`).

May import the services' store and table, the schema, the call path's records and the
vocabulary; never a front end or the gateway.
"""
