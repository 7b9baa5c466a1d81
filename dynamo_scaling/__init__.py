"""dynamo-scaling: autoscaling for NVIDIA Dynamo on Kubernetes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dynamo-scaling")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"
