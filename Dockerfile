# releasebot's image: `releasebot serve` for the webhook receiver, `releasebot drift run` for the
# drift-check CronJobs, and the environments repository's validate workflow. Slim, non-root, and
# fine with a read-only root filesystem (it writes only to the mounted work and /tmp directories).
# Built and published for amd64 and arm64 by .github/workflows/release.yml on a version tag.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY bot ./bot
COPY schemas ./schemas
COPY blueprints ./blueprints
# The cloud extra: fsspec backends, so drift windows can be s3://, gs:// or abfs:// URIs.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[cloud]"

FROM python:3.11-slim
LABEL org.opencontainers.image.title="releasebot" \
      org.opencontainers.image.description="GitOps pull requests for ML model releases" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/releasebot/releasebot"
# git: releasebot clones, fetches and pushes the environments repository.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "releasebot[cloud]" && rm -rf /wheels
RUN groupadd --gid 10001 releasebot && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp releasebot
USER 10001:10001
ENV HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
EXPOSE 8080
ENTRYPOINT ["releasebot"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
