# Quick start: `make gmi` builds the debian-12 GMI on the local QEMU backend;
# `make test` runs the whole test suite. Both install what they need first.
DISTRO ?= debian-12
BACKEND ?= qemu
ARGS ?=
VENV := .venv
PY := $(VENV)/bin/python
# Tools only the harness's own tests run (tests/host_tools.py lists each test's tools;
# tests/test_host_tools.py checks they are all installed here), so no test skips for a
# missing tool on a fresh machine.
TEST_APT_PACKAGES := openssl systemd procps dpkg apt unzip libarchive-tools 7zip
# chromium: the sign-off page's screenshot test (headless). libxml2-utils, jing, debconf: the
# installers' own checks of the answer files (tests/test_answers_upstream.py). gpg, gpgv:
# the signed checksum listings of the install ISOs. xorriso: remastering install ISOs.
# openssh-client: ssh-keygen signs and verifies with an SSH key (--sign-key, --verify-key).
APT_PACKAGES := qemu-system-x86 qemu-utils ovmf debootstrap e2fsprogs dosfstools mtools \
	fdisk util-linux zstd apt-cacher-ng xorriso python3-venv chromium libxml2-utils jing debconf gpg gpgv \
	openssh-client $(TEST_APT_PACKAGES)
# The Allure CLI (npm's allure-commandline, which ships its own jars) needs npm and Java:
# command -> Debian package, installed only when the command is missing (a NodeSource
# nodejs already brings npm and conflicts with Debian's npm package).
REPORT_COMMANDS := npm:npm java:default-jre-headless
STAMP := $(VENV)/.installed
TOOLS := .tools
ALLURE := $(TOOLS)/node_modules/.bin/allure
ALLURE_VERSION ?= 2.46.1
# The type check as Windows sees the harness (it runs there with --backend=hyperv). The
# QEMU backend and the root-tree builders (harness/rootfs/, used only by it) are left out:
# they drive Linux tools (setsid, unix sockets, chown, chroot) and are
# refused on Windows before it is imported (harness/backends/__init__.py).
MYPY_WIN32 := $(PY) -m mypy --platform win32 --exclude '^harness/(backends/qemu|rootfs)/'

.PHONY: gmi test test-under-load setup host-packages venv tools lint clean

gmi: setup
	$(PY) -m pytest checks --distro=$(DISTRO) --backend=$(BACKEND) $(ARGS)

# The whole suite: lint; the harness's own tests (a session of their own: their in-process
# pytest runs must not meet the real run's Allure listener); two real builds side by side,
# TEST_DISTROS (one xdist worker each: the matrix as users run it) and the outside-repo
# example's (below), with their checks and export; then the validator on the archives
# those builds wrote (one more clone boot each);
# then the secrets scan of everything those runs wrote (harness/report/leaks.py): the
# build passwords (plain, base64, URL-quoted) and private keys in every report, log and
# archive (the disk image's blocks too), and on the command lines sampled during the build.
TEST_OUT := reports/make-test
# The validator boots each archive's clone with a seed template that has a fault, so make
# test shows the seed check on real clones: vmgenie's own templates (<Os>/<Version>/seed-data/
# under SEED_TEMPLATES, a copy kept beside the repo) when they are there, else our hand-made
# one (tests/data/seed-template-bad-key: `home:` where cloud-init wants `homedir:`). The
# fault is the template's, not the image's: an expected failure (xfailed), exit status 0,
# the index entry written; tests/expect_seed_findings.py checks each clone named SEED_KEY.
SEED_TEMPLATES ?= ../shared/vmgenie-seed-data
SEED_TEMPLATE := $(if $(wildcard $(SEED_TEMPLATES)/*/*/seed-data),$(SEED_TEMPLATES),tests/data/seed-template-bad-key)
SEED_KEY ?= users.1.home
# Two real builds side by side, so that neither way of preparing an image rots: TEST_DISTROS
# from this checkout in a chroot of its root tree (the default, what `make gmi` does), and
# the outside-repo example (examples/outside-repo: another repository with its own catalogue
# and seed template, the harness pip-installed into a new virtualenv in a temporary folder,
# tests/outside_repo.py) over SSH in its build VM (--prepare=vm: the Hyper-V backend's
# way), with the command its README gives. The same checklist judges both.
TEST_DISTROS ?= debian-12
EXAMPLE_DISTRO ?= acme-debian-13
EXAMPLE_ARGS ?= --prepare=vm
TEST_WORKERS ?= 2
test: setup
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(MYPY_WIN32)
	rm -f $(TEST_OUT)/GMI-*.zip $(TEST_OUT)/GMI-*.zip.sha256 $(TEST_OUT)/gmi-repository.dist.yml
	$(PY) -m pytest tests -n $(TEST_WORKERS) $(ARGS)
	example=$$(mktemp -d "$${TMPDIR:-/tmp}/gmi-example.XXXXXX") && $(PY) tests/outside_repo.py $$example \
		|| exit 1; \
	$(PY) -m harness.report.leaks watch $(TEST_OUT)/cmdline-watch.json & watch=$$!; \
	(cd $$example/acme && $$example/venv/bin/gmi --distro=$(EXAMPLE_DISTRO) $(EXAMPLE_ARGS) \
		--backend=$(BACKEND) --out=$(CURDIR)/$(TEST_OUT) $(ARGS)) & outside=$$!; \
	$(PY) -m pytest checks $(TEST_DISTROS:%=--distro=%) -n $(words $(TEST_DISTROS)) \
		--backend=$(BACKEND) --out=$(TEST_OUT) $(ARGS); built=$$?; \
	wait $$outside; example_built=$$?; kill -TERM $$watch; wait $$watch; rm -rf $$example; \
	[ $$built = 0 ] && [ $$example_built = 0 ]
	$(PY) -m pytest checks $$(for z in $(TEST_OUT)/GMI-*.zip; do printf -- '--gmi=%s ' "$$z"; done) \
		-n $(TEST_WORKERS) --backend=$(BACKEND) --out=$(TEST_OUT) \
		--index=$(TEST_OUT)/gmi-repository.dist.yml --seed-template=$(SEED_TEMPLATE) \
		--index-url='https://gmi.example.org/{archive}' $(ARGS)
	$(PY) tests/expect_seed_findings.py $(TEST_OUT)/runs/latest $(TEST_OUT)/gmi-repository.dist.yml $(SEED_KEY)
	$(PY) -m harness.report.leaks scan $(TEST_OUT) --watch $(TEST_OUT)/cmdline-watch.json

setup: host-packages venv tools

host-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

venv: $(STAMP)

tools: $(ALLURE)

$(ALLURE):
	@missing=$$(for c in $(REPORT_COMMANDS); do command -v $${c%%:*} >/dev/null || echo $${c#*:}; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error allure-commandline@$(ALLURE_VERSION)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

# The harness's own tests LOAD_ROUNDS times in a row while stress-ng keeps LOAD_CPUS cores
# busy (a loaded CI runner): no test may depend on a quiet machine. stress-ng comes from
# Debian, installed here only (make test does not need it).
LOAD_ROUNDS ?= 3
LOAD_CPUS ?= 2
test-under-load: setup
	@command -v stress-ng >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q stress-ng; }
	@stress-ng --cpu $(LOAD_CPUS) --quiet & load=$$!; trap 'kill $$load' EXIT; \
	for round in $$(seq $(LOAD_ROUNDS)); do \
		echo "== round $$round of $(LOAD_ROUNDS), stress-ng --cpu $(LOAD_CPUS) running"; \
		$(PY) -m pytest tests -n $(TEST_WORKERS) -q $(ARGS) || exit 1; \
	done

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(MYPY_WIN32)

clean:
	rm -rf $(VENV) reports/runs
