"""kubemeta: Kubernetes metadata for container log records, served to rsyslog."""

__version__ = "0.1.0"
