"""Regenerate the committed message module of externalscaler.proto (needs grpcio-tools, a test
dependency): `python -m external_metrics.proto.generate` from the repository root. A test checks
that the committed module equals a fresh generation.

Only the messages are generated; the service is registered with grpc's generic handlers
(`external_metrics.keda_grpc`), so no generated gRPC stub pins a grpcio version. protoc's
check that the protobuf runtime is at least the generator's version is removed: the module
uses only the descriptor builder API that every supported protobuf (>= 5.28) has."""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PROTO = "external_metrics/proto/externalscaler.proto"
OUTPUT = "externalscaler_pb2.py"


_PIN = re.compile(r"^from google\.protobuf import runtime_version as _runtime_version\n"
                  r"|^_runtime_version\.ValidateProtobufRuntimeVersion\(\n(?:.*\n)*?\)\n"
                  r"|^# Protobuf Python Version: .*\n", re.M)


def generate() -> str:
    """The module text: protoc run with the repository root as include path (so the file is
    registered as `external_metrics/proto/externalscaler.proto`), without the version pin."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        rc = protoc.main(["grpc_tools.protoc", f"-I{ROOT}", f"--python_out={tmp}", str(ROOT / PROTO)])
        if rc != 0:
            raise RuntimeError(f"protoc failed with {rc}")
        text = (Path(tmp) / "external_metrics" / "proto" / OUTPUT).read_text()
    return _PIN.sub("", text)


def main() -> int:
    (HERE / OUTPUT).write_text(generate())
    print(f"wrote {HERE / OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
