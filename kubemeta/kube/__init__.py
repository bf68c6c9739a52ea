"""The Kubernetes side: the API client (kubeapi, the only module importing the
``kubernetes`` package, and the one place its and urllib3's errors are
translated), the list-then-watch loop (reflector) and its view in the store
(storefeed), and the kubelet as a source (kubeletsource)."""
