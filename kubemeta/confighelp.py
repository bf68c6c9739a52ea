"""One line of help for each config key, for the command-line flags (--help).
The README's configuration reference says more; tests check both name every key."""

from __future__ import annotations

_RETRY = ("the backoff of a failed watch or list, and of the breaker's probes past "
          "api_probe_window: retry_initial·2ⁿ plus up to retry_jitter random, at most "
          "retry_max, never sooner than the API's Retry-After")

HELP: dict[str, str] = {
    "kubernetes_url": "the API server; also emitted as master_url",
    "token": "a bearer token (prefer token_file)",
    "token_file": "a file holding the bearer token, re-read whenever it changes",
    "ca_file": "CA bundle to verify the API server",
    "client_cert_file": "client certificate authentication; set both",
    "client_key_file": "client certificate authentication; set both",
    "kubeconfig": "take URL and credentials from a kubeconfig file",
    "kubeconfig_context": "take URL and credentials from a kubeconfig file",
    "in_cluster": (
        "use the pod's service account token and CA "
        "(/var/run/secrets/kubernetes.io/serviceaccount)"),
    "insecure_skip_tls_verify": "do not verify the API server's certificate (testing only)",
    "allow_insecure_http": (
        "accept an http:// API URL (a local proxy that adds credentials itself); kubemeta then "
        "sends it no token and no client certificate"),
    "api_connect_timeout": "limits on one API request, which always runs in the background",
    "api_read_timeout": "limits on one API request, which always runs in the background",
    "node_name": "this node's name",
    "state_dir": "kubemeta's state directory",
    "log_file": "kubemeta's own log when the journal is not available",
    "log_level": "debug, info, warning or error",
    "filename_path": "where the log file name is in the record",
    "container_name_path": "journald fields, used when both are present",
    "container_id_path": "journald fields, used when both are present",
    "filename_patterns": "regexes for log file names",
    "container_name_patterns": "regexes for CONTAINER_NAME",
    "de_dot": "replace . in label and annotation keys, as mmkubernetes does",
    "de_dot_separator": "what replaces the .",
    "annotation_match": "annotations whose key matches one of these are emitted; none by default",
    "log_control": (
        "a pod's annotations may drop or sample its lines (log_control_exclude, "
        "log_control_sample); the shipped snippets act on the marks"),
    "log_control_exclude": (
        "this annotation \"true\" drops a pod's lines; this annotation-<container> \"true\" "
        "one container's"),
    "log_control_sample": (
        "this annotation (a number from 0 to 1) keeps that share of a pod's lines, at random"),
    "log_control_fluentbit": (
        "fluentbit.io/exclude (and fluentbit.io/exclude-<container>) drop lines too"),
    "node_label_match": (
        "with extra_fields' node_labels: the node labels whose key matches one of these are "
        "emitted; the zone, region and instance type by default"),
    "extra_fields": (
        "more $!kubernetes fields, after mmkubernetes's: pod_ip, container_image, "
        "container_image_id, owner (the pod's deployment, statefulset, daemonset, job or "
        "cronjob), node_labels (source watch: the node's labels, see node_label_match)"),
    "parse_cri": (
        "unframe CRI records (containerd, CRI-O) into $!log, $!stream, $!time; other records are "
        "left alone"),
    "merge_log": "also parse a log line that is a JSON object into $!<merge_log_key>",
    "merge_log_key": "where merge_log puts the application's JSON",
    "source": (
        "where pod metadata comes from: watch lists this node's pods and all namespaces, then "
        "watches them; kubelet asks the node's kubelet for its pods; get asks the ..."),
    "watch_timeout": (
        "a watch asks the server to end it after this long, times a random 1 to 2 so a fleet's "
        "watches end apart; it is then resumed from where it stopped"),
    "watch_inactivity_timeout": (
        "a watch that sends nothing (not even a bookmark) for this long is reconnected"),
    "watch_start_jitter": (
        "with a warm-start snapshot, the first list waits a random part of this, so a fleet "
        "restarting together does not list at once; the snapshot serves lines ..."),
    "kubelet_url": (
        "source: kubelet: the node's kubelet, asked with the same credentials as the API"),
    "kubelet_ca_file": "CA bundle to verify the kubelet's serving certificate",
    "kubelet_insecure_skip_tls_verify": (
        "do not verify the kubelet's certificate; kubemeta then sends it no credentials, so only "
        "a kubelet that allows anonymous reads answers. For a self-signed ..."),
    "kubelet_refresh_interval": "how often the kubelet's pod list is fetched",
    "kubelet_min_interval": (
        "a line from a pod not in the last list fetches it again, but never more often than this"),
    "kubelet_fallback": (
        "while the API fails, a line of a pod kubemeta does not know asks the node's kubelet "
        "(kubelet_url) for its pods, at most every kubelet_min_interval; never while the API "
        "works"),
    "snapshot_interval": (
        "how often the warm-start snapshot (state_dir/snapshot-<group>.json) is written when "
        "something changed; it is also written when the helper stops; 0: no snapshot"),
    "share_helpers": (
        "the helpers of one node (rsyslog starts one per queue worker thread) share one view of "
        "the cluster through state_dir: one leads and asks the API, the others ..."),
    "share_view_max_age": (
        "a follower stops serving from its leader's view when the leader has not published or "
        "vouched for it (it does every 5 s) for this long, and asks the leader for ..."),
    "busy_poll": (
        "after each reply, wait for the next line awake (spinning) for up to this long before "
        "sleeping: a sleeping helper must be woken for each line, which costs more ..."),
    "reply_names_record": (
        "each mmexternal reply also sets $!kubemeta_of (file, offset: the record's "
        "$!metadata!filename and $!metadata!fileoffset), so that a reply rsyslog reads for ..."),
    "table_file": (
        "table mode: the lookup table kubemeta serve keeps (mode 0640), which the table snippets "
        "load"),
    "table_reload_file": (
        "table mode: kubemeta serve appends a line here after each table write; the table "
        "snippets tail it into reload_lookup_table"),
    "table_log_files": "table mode: the container log files (globs) the table has an entry for",
    "table_max_bytes": (
        "table mode: the table's bound; containers past it are left to the helper (logged once)"),
    "table_min_interval": (
        "table mode: the least time between two table writes, so a burst of changes costs a few "
        "reloads"),
    "pod_cache_ttl": (
        "after this, a pod is refreshed in the background, and the old metadata is served "
        "meanwhile"),
    "namespace_cache_ttl": "the same for namespaces",
    "not_found_ttl": "how long a 404 is believed",
    "error_retry_interval": (
        "the least wait before asking again for one object whose answer made no sense (wrong "
        "kind, malformed)"),
    "pod_cache_size": "cache bounds (least recently used entries go first)",
    "namespace_cache_size": "cache bounds (least recently used entries go first)",
    "deleted_pod_quiet_period": (
        "a deleted pod's metadata is kept for its containers' unread lines until none has come "
        "for this long"),
    "deleted_pod_max_age": "and never longer than this after the deletion",
    "lookup_deadline": "the longest a line waits for a pod kubemeta has not seen yet",
    "lookup_workers": "background lookup threads",
    "breaker_threshold": "consecutive API failures that open the circuit breaker",
    "retry_initial": _RETRY,
    "retry_max": _RETRY,
    "retry_jitter": _RETRY,
    "api_probe_interval": (
        "while the API fails, kubemeta probes it every 0.5 to 1.5 times this, so a pod first "
        "seen during an outage is labelled about a second after the API returns; 0: by the "
        "retry backoff only"),
    "api_probe_window": (
        "for this long into an outage; after it, probes follow the retry backoff, so a long "
        "outage costs the API little"),
    "max_request_rate": (
        "the most API requests kubemeta sends, so a recovering API is drained gently"),
    "request_burst": "the most API requests kubemeta sends, so a recovering API is drained gently",
    "stats_interval": "how often the counters are written",
    "stats_file": (
        "append the counters here as one JSON line each interval (rsyslog impstats style)"),
    "prometheus_file": (
        "write the counters here in Prometheus text format, atomically (for node exporter's "
        "textfile collector, e.g. /var/lib/prometheus/node-exporter/kubemeta.prom)"),
    "sink": (
        "omprog mode: where enriched lines go: unix:/path (an rsyslog imptcp listener), "
        "tcp:host:port or file:/path"),
    "sink_timeout": (
        "omprog mode: the longest a connect, a write, or the wait for the consumer to read may "
        "take; keep it below omprog's confirmTimeout"),
    "sink_retry_initial": (
        "omprog mode: backoff between reconnection attempts to a sink that is gone"),
    "sink_retry_max": "omprog mode: backoff between reconnection attempts to a sink that is gone",
    "transaction_max_bytes": (
        "no longer used: omprog mode writes each record when it arrives (see omprog mode); "
        "accepted so that existing configs load"),
    "max_line_bytes": (
        "longer input lines are answered {} without being buffered (omprog: dropped, and logged)"),
}
