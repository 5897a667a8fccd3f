# The prog-image application image: Ray head and workers both run it (see compose.yaml).
FROM python:3.11-slim

# curl: healthchecks. Every codec comes from the wheels (the optional lossless mirror's libturbojpeg0 is not
# installed: PROG_IMAGE_LOSSLESS_MIRROR stays off, so every node renders the same bytes).
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY deployments ./deployments
COPY storage ./storage
COPY transforms ./transforms
RUN pip install --no-cache-dir .

EXPOSE 8000 6379
CMD ["prog-image", "serve"]
