"""Where records go: Elasticsearch bulk (elasticsearch.py) or an NDJSON file (file.py)."""
