# Two commands on a fresh machine (only the system Python needed):
#   make demo   - create .venv, install everything, run the main job on a small embedded default
#   make test   - create .venv, install everything, run the test suite
# On a GPU machine: `make TORCH_REQUIREMENTS= ...` after installing your own torch build
# into .venv (README, "Installing on a GPU machine").

PYTHON ?= python3
VENV ?= .venv
TORCH_REQUIREMENTS ?= requirements/torch.txt
PYTEST_ARGS ?=
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.snl_video_installed

.PHONY: setup system-deps demo lint-imports typecheck test test-all fuzz-long bench bench-models bench-train clean

system-deps:
	bash scripts/install_system_deps.sh

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/torch.txt
	bash scripts/install_system_deps.sh
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
ifneq ($(strip $(TORCH_REQUIREMENTS)),)
	$(VPY) -m pip install --progress-bar off -r $(TORCH_REQUIREMENTS)
endif
	# decord2 replaced decord and installs into the same decord/ folder: drop an old decord first
	$(VPY) -m pip uninstall -y -q decord >/dev/null 2>&1 || true
	$(VPY) -m pip install --progress-bar off -e ".[test]"
	$(VPY) -c "import torch, torchvision, snl_video; print('snl_video', snl_video.__version__, '| torch', torch.__version__, '| torchvision', torchvision.__version__)"
	$(VPY) -c "from snl_video.data import available_backends; print('decoding backends:', ', '.join(available_backends()))"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/snl-video demo

# The layers contract first (pyproject.toml, [tool.importlinter]): seconds, and it names the
# import that breaks a layer. Then the type check (below), then the default suite: everything
# not marked slow, on both cores.
lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports

# The type check, part of `make test`: mypy over the whole package snl_video/ ([tool.mypy] in
# pyproject.toml: default strictness plus check_untyped_defs, against torch's and numpy's own
# annotations). scripts/ and tests/ are not type-checked (thin entry points and test code, mostly
# unannotated). About 30 s of CPU from cold, 10 s with its cache (.mypy_cache/, kept between
# runs; `make clean` removes it).
typecheck: $(STAMP)
	$(VPY) -m mypy

test: lint-imports typecheck
	$(VPY) -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

test-all: lint-imports typecheck
	$(VPY) -m pytest -n 2 $(PYTEST_ARGS)

# The fuzz tests (tests/fuzz/) run in `make test` under the hypothesis profile `ci` (a fixed,
# derandomised example count: the same examples everywhere). A fuzzing session with many more
# random examples: the profile `long` (tests/conftest.py).
fuzz-long: $(STAMP)
	HYPOTHESIS_PROFILE=long $(VPY) -m pytest -n 2 tests/fuzz --hypothesis-show-statistics $(PYTEST_ARGS)

bench: $(STAMP)
	$(VPY) scripts/bench_nonlocal.py

bench-models: $(STAMP)
	$(VPY) scripts/bench_models.py

# r3d50 +- SNL / NL at the paper's setting: model-only step and the real training loop on a
# small synthetic prepared set (is training input-bound?). A few minutes on 2 CPU cores.
bench-train: $(STAMP)
	$(VPY) scripts/bench_train.py --model r3d50 --nonlocal none snl nl --batch 2 --data synthetic --workers 1

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache
