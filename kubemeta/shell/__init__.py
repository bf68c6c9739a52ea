"""The per-line logic and what surrounds the pipe: the enricher (one line in,
one reply out), omprog mode's sinks, kubemeta's own log, and the counters."""
