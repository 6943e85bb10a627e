# vulnwatch: `watch` (the daemon) by default; `run` for one cycle (a cron job).
# Runs as an unprivileged user and needs no writable root filesystem: state and caches live in
# the two volumes below (or wherever the config points), temporary files in $TMPDIR.
#   docker build -t vulnwatch .
#   docker run --read-only --tmpfs /tmp -v vw-state:/var/lib/vulnwatch -v vw-cache:/var/cache/vulnwatch \
#     -v $PWD/vulnwatch.yaml:/etc/vulnwatch/vulnwatch.yaml:ro -p 8080:8080 vulnwatch
# See docs/deploy.md.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# the project itself, from this tree; its dependencies are bounded in pyproject.toml
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-compile --prefix=/install ".[postgres]"

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 vulnwatch \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/vulnwatch --shell /usr/sbin/nologin vulnwatch \
 && mkdir -p /var/lib/vulnwatch /var/cache/vulnwatch /etc/vulnwatch \
 && chown 10001:10001 /var/lib/vulnwatch /var/cache/vulnwatch
COPY --from=build /install /usr/local
COPY deploy/vulnwatch.yaml /etc/vulnwatch/vulnwatch.yaml
ENV VULNWATCH_CONFIG=/etc/vulnwatch/vulnwatch.yaml \
    HOME=/var/lib/vulnwatch \
    XDG_STATE_HOME=/var/lib/vulnwatch \
    XDG_CACHE_HOME=/var/cache/vulnwatch \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/vulnwatch", "/var/cache/vulnwatch"]
USER 10001:10001
WORKDIR /var/lib/vulnwatch
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["vulnwatch"]
CMD ["--log-format", "json", "--log-level", "INFO", "watch"]
