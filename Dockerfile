# releasebot's image: `releasebot serve` for the webhook receiver, `releasebot drift run` for the
# drift-check CronJobs. Slim, non-root, and fine with a read-only root filesystem (it writes only
# to the mounted work and /tmp directories).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY bot ./bot
COPY schemas ./schemas
COPY blueprints ./blueprints
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# git: releasebot clones, fetches and pushes the environments repository.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
RUN groupadd --gid 10001 releasebot && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp releasebot
USER 10001:10001
ENV HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
EXPOSE 8080
ENTRYPOINT ["releasebot"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
