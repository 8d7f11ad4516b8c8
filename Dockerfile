# The voicebot for the production profile (see compose.yaml). Models are not baked in: mount them at /models.
FROM python:3.11-slim

# 1 = add the CUDA 12 cuBLAS and cuDNN 9 libraries CTranslate2 needs for Whisper on an NVIDIA GPU.
ARG WITH_CUDA=0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# espeak-ng: German fallback voice and Piper's phonemizer data; libsndfile for audio files.
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY voicebot ./voicebot
COPY sip_bridge ./sip_bridge
COPY knowledge ./knowledge

RUN pip install ".[postgres]" \
    && if [ "$WITH_CUDA" = "1" ]; then pip install "nvidia-cublas-cu12>=12.4,<13" "nvidia-cudnn-cu12>=9.1,<10"; fi
ENV LD_LIBRARY_PATH=/usr/local/lib/python3.11/site-packages/nvidia/cublas/lib:/usr/local/lib/python3.11/site-packages/nvidia/cudnn/lib

RUN useradd --system --uid 10001 --home-dir /app voicebot \
    && mkdir -p /app/var /models \
    && chown voicebot /app/var
USER voicebot

ENV VOICEBOT_PATHS__MODELS_DIR=/models \
    HF_HUB_OFFLINE=1
EXPOSE 5060/udp 5060/tcp 8080/tcp
ENTRYPOINT ["voicebot"]
CMD ["serve"]
