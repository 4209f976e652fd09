# The Stadspuls service image: `stadspuls up` against the database and broker in the environment.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ingest ingest
COPY devices devices
COPY ngsi ngsi
COPY storage storage
COPY alerts alerts
COPY feeds feeds
COPY stadspuls stadspuls
COPY deploy deploy
RUN pip install --no-cache-dir .
USER nobody
EXPOSE 9464
CMD ["stadspuls", "up"]
