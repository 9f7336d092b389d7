"""Training: the records made ready (``datasets``), the engine that trains the members in their stages
(``engine``), its callbacks, optimizer, loss, crash-safe checkpoint and data-parallel distribution."""
