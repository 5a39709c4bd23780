#!/usr/bin/env bash
# `make helm-check`: the chart lints strictly and renders valid manifests for every value set.
# For the default values (GPU cluster) and each deploy/k8s/ci/*.yaml: `helm lint --strict`, then
# `helm template` validated by kubernetes-validate --strict against the oldest Kubernetes the chart
# supports and the newest whose schemas are bundled. Offline: no cluster, no chart repository.
set -euo pipefail
helm=${1:?usage: helm_check.sh HELM KUBERNETES_VALIDATE}
validate=${2:?usage: helm_check.sh HELM KUBERNETES_VALIDATE}
chart=deploy/k8s
kube_versions=(1.30.0 1.37.0)
rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT

for values in "" "$chart"/ci/*.yaml; do
    args=()
    [[ -n $values ]] && args=(-f "$values")
    echo "helm-check: ${values:-default values (GPU)}"
    "$helm" lint --strict --quiet "$chart" "${args[@]}" >/dev/null || { "$helm" lint --strict "$chart" "${args[@]}"; exit 1; }
    "$helm" template deja "$chart" --namespace deja "${args[@]}" >"$rendered"
    for version in "${kube_versions[@]}"; do
        "$validate" --strict --quiet --no-warn -k "$version" "$rendered"
    done
done
echo "helm-check: ok"
