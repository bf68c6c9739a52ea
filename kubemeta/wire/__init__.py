"""Sans-IO protocols: rsyslog's pipe (framing, fulljson records, omprog's
statuses), the API's watch streams and list answers, and the messages of a
node's helpers. Bytes in, values out; bounded; nothing here touches a socket,
a thread, a clock or a file."""
