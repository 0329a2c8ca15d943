# The OET container image: the `oet` package, its example scripts, and its three entry points.
#
# The build context is a directory holding `wheels/` (the oet wheel and its dependencies, made
# with `pip wheel --wheel-dir wheels .`) and `scripts/`. The image installs from those wheels
# only, so the build needs no index and no network.
#
#   pip wheel --wheel-dir wheels . && docker build --build-arg BASE=python:3.11-slim .
#
# Our own test cluster builds it daemonless with buildah on a Debian base made by debootstrap
# (see k8s/testenv/build_images.py). BASE must provide python3 with the venv module.
ARG BASE=python:3.11-slim
FROM ${BASE}

RUN python3 -m venv /opt/oet \
 && useradd --uid 1000 --user-group --create-home --home-dir /home/oet --shell /bin/sh oet

COPY wheels/ /tmp/wheels/
RUN /opt/oet/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels oet \
 && rm -rf /tmp/wheels

COPY scripts/ /scripts/

ENV PATH=/opt/oet/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OET_SCRIPT_DIRS=/scripts

USER 1000:1000
WORKDIR /home/oet

# Entry points: `oet` (the CLI), `oet-rest` (the REST server), `oet-runner` (one procedure),
# `oet-operator` (the Kubernetes operator).
CMD ["oet", "--help"]
