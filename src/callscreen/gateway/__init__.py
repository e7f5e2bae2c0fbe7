"""The gateway process, ``callscreen serve``: it runs the call path and what sits
beside it: the attempt-log writer (:mod:`.attemptlog`), metrics (:mod:`.metrics`),
health (:mod:`.health`), the opt-out route (:mod:`.optout`), the outcome watcher
(:mod:`.outcomes`) and the private local Redis (:mod:`.localredis`).

May import the call path, the services, the Asterisk side and the layers below them;
nothing but the front ends imports it.
"""
