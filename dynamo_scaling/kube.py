"""One way for every component to reach the API server."""

from __future__ import annotations

from kubernetes import client, config

# (connect, read) seconds for every call that does not pass its own `_request_timeout`: without
# one, a call on a connection the network silently dropped waits forever
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)


class BoundedApiClient(client.ApiClient):
    """An ApiClient whose calls time out by default (watches excepted: they idle by design)."""

    def __init__(self, configuration: client.Configuration | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__(configuration)
        self.default_timeout = timeout

    def call_api(self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None):
        if _request_timeout is None and "watch=true" not in url.lower():
            _request_timeout = self.default_timeout
        return super().call_api(method, url, header_params=header_params, body=body, post_params=post_params,
                                _request_timeout=_request_timeout)


def api_client(kubeconfig: str | None = None, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> client.ApiClient:
    """From `kubeconfig` when given, else in-cluster, else the default kubeconfig."""
    found = optional_api_client(kubeconfig, timeout)
    if found is not None:
        return found
    cfg = client.Configuration()
    config.load_kube_config(client_configuration=cfg)
    return BoundedApiClient(cfg, timeout)


def optional_api_client(kubeconfig: str | None = None,
                        timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> client.ApiClient | None:
    """From `kubeconfig` when given, else in-cluster, else None: for a component that can run
    without the API server (the metrics server outside a cluster serves without authorization)."""
    cfg = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    else:
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException:
            return None
    return BoundedApiClient(cfg, timeout)
