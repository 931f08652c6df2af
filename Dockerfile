# syntax=docker/dockerfile:1
# taskplanner: the daemon (`taskplanner run`) in a slim, non-root image.
#   docker build -t taskplanner .
#   docker run -p 8080:8080 \
#     -v "$PWD/taskplanner.toml:/etc/taskplanner/taskplanner.toml:ro" \
#     --env-file taskplanner.env taskplanner
# The configuration is read from $TASKPLANNER_CONFIG; secrets come from the environment
# variables and files its *_env / *_file keys name (see README, "Operations").

# ---- build: the taskplanner wheel and the wheels of every dependency
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY connectors ./connectors
COPY taskplanner ./taskplanner
RUN python -m pip wheel --wheel-dir /wheels .

# ---- runtime: no compiler, no sources, no pip cache; runs as an unprivileged user
FROM python:3.11-slim
LABEL org.opencontainers.image.title="taskplanner" \
      org.opencontainers.image.description="One task list per recruiting coordinator, kept in sync with the ATS and calendars"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TASKPLANNER_CONFIG=/etc/taskplanner/taskplanner.toml
RUN groupadd --system --gid 10001 taskplanner \
    && useradd --system --uid 10001 --gid taskplanner --no-log-init \
       --home-dir /var/lib/taskplanner --create-home --shell /usr/sbin/nologin taskplanner \
    && mkdir -p /etc/taskplanner
# Installed from the build stage's wheels only (no index); the wheels never land in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --find-links=/wheels /wheels/taskplanner-*.whl
# The working directory is where a SQLite database (sqlite:///taskplanner.db) would live:
# mount a volume here, or use PostgreSQL.
WORKDIR /var/lib/taskplanner
USER 10001:10001
EXPOSE 8080
# Liveness only (the process answers); /readyz is for load balancers and orchestrators.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
CMD ["taskplanner", "run"]
