# bidsdeid container (see docs/containers_and_clusters.md).
#
#   docker build --build-arg BIDSDEID_VERSION=$(python3 scripts/version.py) -t bidsdeid .
#   docker run --rm --network none -u "$(id -u):$(id -g)" \
#     -v /data/study:/data/in:ro -v /data/out:/data/out -v /data/out_private:/data/private \
#     bidsdeid /data/in /data/out participant --private-dir /data/private
#
# Any UID works (docker run -u): the tool writes only to its output, private and work
# dirs (temporary files and matplotlib's cache go to the work dir), reads the baked-in
# templates and derived masks from read-only folders, and needs no network at run time.
# tests/test_recipes.py pins this file to the scripts CI runs; tests/test_ops_install.py
# runs the same steps in a throwaway venv.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- 1. the package, installed by the same script the README, CI and singularity.def use
FROM ${PYTHON_IMAGE} AS install
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
WORKDIR /src/bidsdeid
COPY . .
RUN bash scripts/install.sh --system \
 && rm -rf build ./*.egg-info

# ---- 2. templates: exactly the TemplateFlow files the registry needs (the only step with
# ----    network), then the derived face masks, computed once here
FROM install AS templates
ENV TEMPLATEFLOW_HOME=/opt/templateflow BIDSDEID_CACHE=/opt/bidsdeid-cache
RUN python scripts/fetch_templates.py \
 && bidsdeid-templates precompute \
 && find /opt/templateflow -type f -empty -delete

# ---- 3. final image -----------------------------------------------------------------
FROM install AS final
ARG BIDSDEID_VERSION=unknown
ARG VCS_REF=unknown
LABEL org.opencontainers.image.title="bidsdeid" \
      org.opencontainers.image.description="De-identify and deface MRI studies for sharing (BIDS App)" \
      org.opencontainers.image.version="${BIDSDEID_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=templates /opt/templateflow /opt/templateflow
COPY --from=templates /opt/bidsdeid-cache /opt/bidsdeid-cache
# The version label must be the installed package's version (or left "unknown").
RUN installed=$(bidsdeid --version | awk '{print $NF}') \
 && { [ "$BIDSDEID_VERSION" = unknown ] || [ "$BIDSDEID_VERSION" = "$installed" ] \
      || { echo "BIDSDEID_VERSION=$BIDSDEID_VERSION but bidsdeid $installed is installed" >&2; exit 1; }; } \
 && useradd --create-home --home-dir /home/bidsdeid --shell /bin/bash bidsdeid \
 && chmod -R go=u /home/bidsdeid \
 && chmod -R a+rX,a-w /opt/templateflow /opt/bidsdeid-cache
ENV HOME=/home/bidsdeid \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    BIDSDEID_CACHE=/opt/bidsdeid-cache \
    MPLBACKEND=Agg \
    NIPYPE_NO_ET=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/bidsdeid"]
