"""What a record is about and what kubemeta says of it: which pod wrote a
line (identify), mmkubernetes's schema and the trimmed metadata it is built
from (schema), the application's line (logline), and replies spliced from
parts serialized once (replyparts). Pure: no I/O."""
