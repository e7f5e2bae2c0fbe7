"""The Asterisk side beyond FastAGI: the AMI client (:mod:`.ami`), call files
(:mod:`.callfiles`) and the cascade over the spool and live channels (:mod:`.cascade`).

May import the schema and the vocabulary; never the services, a front end or the
gateway.
"""
