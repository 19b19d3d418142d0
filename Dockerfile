# syntax=docker/dockerfile:1
# Build stage: a wheel of the project and its dependencies, built once.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
RUN pip install --no-cache-dir --upgrade pip==25.3 \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

# Runtime stage: the wheels (the migrations are inside), an unprivileged user.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LRS_HOST=0.0.0.0 \
    LRS_PORT=8000 \
    LRS_WORKERS=2
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin lrs
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
 && rm -rf /wheels
COPY docker/entrypoint.sh /usr/local/bin/lrs-entrypoint
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('LRS_PORT', '8000') + '/health/ready', timeout=2)"]
ENTRYPOINT ["/usr/local/bin/lrs-entrypoint"]
