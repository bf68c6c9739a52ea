"""What outlives a helper: the warm-start snapshot's format and file
(snapshot), and the keeper that loads it at start and writes it when the
store changed (warmstart)."""
