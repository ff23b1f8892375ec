"""What an operator watches: the metrics every room records (metrics.py), their scrape (exposition.py) and
the log format with each request's id (logs.py). Imports no other room, so that every room may import it."""
