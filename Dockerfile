# The prog-image application image: Ray head and workers both run it (see compose.yaml).
FROM python:3.11-slim

# libturbojpeg: lossless JPEG mirror in the DCT domain; curl: healthchecks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libturbojpeg0 curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY deployments ./deployments
COPY storage ./storage
COPY transforms ./transforms
RUN pip install --no-cache-dir .

EXPOSE 8000 6379
CMD ["prog-image", "serve"]
