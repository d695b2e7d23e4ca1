# bidsdeid container: docker build -t bidsdeid:latest .
# Run:  docker run --rm --network none -v /data/study:/in:ro -v /data/out:/out \
#         -v /data/out_private:/private bidsdeid:latest /in /out participant --private-dir /private
# The image runs for any UID (docker run -u $(id -u)): nothing is written outside the
# output, private and work dirs; HOME is writable by anyone; no network at run time.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- 1. the package, installed by the same script the README and CI use ----------
FROM ${PYTHON_IMAGE} AS install
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
WORKDIR /src/bidsdeid
COPY . .
RUN bash scripts/install.sh --system

# ---- 2. templates: exactly the TemplateFlow files the registry needs, and the -----
# ----    derived face masks, fetched and computed once at build time ----------------
FROM install AS templates
ENV TEMPLATEFLOW_HOME=/opt/templateflow BIDSDEID_CACHE=/opt/bidsdeid-cache
RUN python scripts/fetch_templates.py \
 && bidsdeid-templates precompute

# ---- 3. final image -----------------------------------------------------------------
FROM install AS final
ARG BIDSDEID_VERSION=unknown
LABEL org.opencontainers.image.title="bidsdeid" \
      org.opencontainers.image.description="De-identify and deface MRI studies for sharing (BIDS App)" \
      org.opencontainers.image.version="${BIDSDEID_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=templates /opt/templateflow /opt/templateflow
COPY --from=templates /opt/bidsdeid-cache /opt/bidsdeid-cache
RUN useradd --create-home --home-dir /home/bidsdeid --shell /bin/bash bidsdeid \
 && chmod -R go=u /home/bidsdeid \
 && chmod -R a+rX /opt/templateflow /opt/bidsdeid-cache
ENV HOME=/home/bidsdeid \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    BIDSDEID_CACHE=/opt/bidsdeid-cache \
    MPLBACKEND=Agg \
    NIPYPE_NO_ET=1 \
    OMP_NUM_THREADS=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/bidsdeid"]
