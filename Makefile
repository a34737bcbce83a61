# The README's two commands are `make up` and `make test`; both set up what they need first.
.PHONY: setup up down preview test test-full unit lint bench bench-cells bench-drills bench-kube

setup:
	scripts/setup

up: setup
	.venv/bin/hivestack lab up

down: setup
	.venv/bin/hivestack lab down

preview: setup
	scripts/pulumi stack select --create --secrets-provider passphrase sample-sz
	scripts/pulumi preview --policy-pack policies --stack sample-sz

# scripts/run-tests runs setup itself (timed in its table). test: lint, unit, engine, one lab bring-up with every
# layer, its checks, one re-run of every stage, one DC outage drill. test-full: also every drill, deep drift, the
# fault matrix, a second stack.
test:
	scripts/run-tests

test-full:
	scripts/run-tests --full

unit: setup
	.venv/bin/pytest -m unit -q

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench: setup
	.venv/bin/python benchmarks/topology_scale.py

# Rebuilds the `lab` stack from zero and drives load through it (minutes).
bench-cells: setup
	.venv/bin/python benchmarks/cells.py

# Every drill on the running `lab` stack, twice each (minutes).
bench-drills: setup
	.venv/bin/python benchmarks/drills.py

# The Kubernetes control plane alone on loopback: 3 DCs x 300 kwok nodes, 3,000 pods (minutes; no lab needed).
bench-kube: setup
	.venv/bin/python benchmarks/kube_scale.py
