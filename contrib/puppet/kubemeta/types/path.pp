# An absolute path with no whitespace: rsyslog splits mmexternal's binary line
# on spaces, so a path with one could not be named there.
type Kubemeta::Path = Pattern[/\A\/[^\s]*\z/]
