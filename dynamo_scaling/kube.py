"""One way for every component to reach the API server."""

from __future__ import annotations

from kubernetes import client, config


def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """From `kubeconfig` when given, else in-cluster, else the default kubeconfig."""
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()
