# snaketune: the workflow's software in one image, for `snakemake --sdm apptainer` or docker.
#
#   docker build -t snaketune .                                   # torch as pip resolves it
#   docker build --build-arg TORCH_SPEC="torch==2.13.0" \
#                --build-arg PIP_EXTRA_INDEX_URL=<your PyTorch CPU or CUDA wheel index> -t snaketune .
#
# TORCH_SPEC picks the torch release; the wheel index you pass picks the CPU or CUDA build
# (pip's configured default index gives the CUDA build on Linux x86-64).
FROM python:3.11-slim

ARG TORCH_SPEC="torch>=2.13,<3"
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

WORKDIR /opt/snaketune
# The library: installed (with its schema, report captions and the snaketune-* commands the jobs
# run), then its sources removed, so the image holds one copy of it, in site-packages.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install "${TORCH_SPEC}" && pip install . && rm -rf src build \
    && python -c "import torch, snakemake, snaketune" && command -v snaketune-trial snaketune-summary snaketune-predict
# The workflow around it.
COPY Snakefile ./
COPY workflow ./workflow
COPY config ./config
COPY profiles ./profiles
COPY envs ./envs

WORKDIR /work
CMD ["snakemake", "--snakefile", "/opt/snaketune/Snakefile", "--cores", "all"]
