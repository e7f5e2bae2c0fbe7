"""The shared vocabulary: records and enums (:mod:`.model`), phone numbers
(:mod:`.numbers`), the one exception tree (:mod:`.errors`), the settings
(:mod:`.config`) and time formats (:mod:`.times`).

Pure and dependency-free within callscreen: imports nothing from the other packages.
"""
