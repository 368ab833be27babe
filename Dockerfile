# kitmlflow for CI jobs and `kitmlflow watch`: a slim Python image, a non-root user, `kitmlflow` as the entry point.
#
#   docker build -t kitmlflow .                                  # with the S3, GCS and Azure artifact stores
#   docker build --build-arg EXTRAS=s3 -t kitmlflow:s3 .          # only what your artifact store needs
#   docker build --build-arg EXTRAS= -t kitmlflow:lean .          # an MLflow server's proxied artifacts only
#   docker run --rm -e MLFLOW_TRACKING_URI=https://mlflow.example.com \
#       -v "$HOME/.kitops:/home/kitmlflow/.kitops" kitmlflow \
#       import mlflow://models/churn@champion -t registry.example.com/ml/churn:v3 --yes --push
#
# The install is one pip command in a virtual environment of its own, copied whole into the final stage: no
# compiler, no pip cache and no source tree end up in the image. tests/live/test_lean_install.py runs the same
# command in a fresh venv.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ARG EXTRAS=s3,gcs,azure
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md /src/
COPY kitmlflow_tui /src/kitmlflow_tui
RUN python -m venv /opt/kitmlflow && /opt/kitmlflow/bin/python -m pip install "/src${EXTRAS:+[$EXTRAS]}"

FROM python:${PYTHON_VERSION}-slim
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin kitmlflow
COPY --from=build /opt/kitmlflow /opt/kitmlflow
ENV PATH=/opt/kitmlflow/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    KITOPS_HOME=/home/kitmlflow/.kitops \
    KITMLFLOW_CACHE_DIR=/home/kitmlflow/.cache/kitmlflow
USER kitmlflow
WORKDIR /home/kitmlflow
# `watch` listens here (--listen 0.0.0.0:8765 inside a container).
EXPOSE 8765
ENTRYPOINT ["kitmlflow"]
CMD ["--help"]
