FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CSP_VAR_DIR=/app/var \
    CSP_ALLOW_DEV_SECRET=0

RUN useradd --create-home --uid 10001 csplatform
WORKDIR /app

COPY . .
# pip install . brings the dependencies; the app itself runs from /app, where
# templates/ sits beside the package (PYTHONPATH puts /app first).
ENV PYTHONPATH=/app
RUN pip install . \
    && SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R csplatform:csplatform /app/var

USER csplatform
EXPOSE 8000
CMD ["gunicorn", "csplatform.wsgi", "-c", "python:csplatform.gunicorn_settings", "--bind", "0.0.0.0:8000", "--workers", "3"]
