"""Generation as a service: the HTTP API (FastAPI) with its dynamic batching queue, limits and
metrics, the web page, and batch jobs over a prompts file. Imports the pipeline surface;
nothing imports it but the commands."""
