# The Airflow image of a Vigil cluster: Airflow 3.3 + Vigil (core, DAGs, plugins, site builder) +
# the stage packages, for every Airflow component and Celery worker of deploy/docker-compose.yaml
# and deploy/helm-values.yaml. Build from the repository root:
#   GPU workers (CUDA torch, the default):
#     docker build -f deploy/airflow.Dockerfile -t vigil/airflow:latest .
#   CPU-only fleet:
#     docker build -f deploy/airflow.Dockerfile --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu -t vigil/airflow:cpu .
# deploy/airflow.Dockerfile.dockerignore keeps the context to the sources (no .venv, no var/).
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}
ARG TORCH_REQUIREMENT=torch==2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first and pinned (an unpinned torch pulls the wrong CUDA build), then Vigil with the
# trainer stack, the report site and the fleet extra (Celery, Kubernetes, s3fs).
RUN pip install --index-url "${TORCH_INDEX}" "${TORCH_REQUIREMENT}"
COPY --chown=airflow:0 . /opt/vigil
RUN pip install "/opt/vigil[trainer,site,fleet]" "apache-airflow==3.3.2"
# AIRFLOW_HOME stays /opt/airflow (the chart's and compose's convention); the DAGs come from the
# source tree, the plugins from the installed package.
ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/vigil/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    VIGIL_SITE_DIR=/opt/vigil/site \
    OMP_WAIT_POLICY=PASSIVE
