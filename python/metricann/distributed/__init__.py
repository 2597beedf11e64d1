"""MetricANN past one machine, on Ray (`pip install metricann[ray]`):

- `extract`: embed an image collection with one model per worker, into
  Parquet shards and the CLI's embeddings folder (docs/scale.md);
- `shard_of`, `partition` and the Serve application in `serve`: a gallery
  split by class over shards, each shard a Ray Serve deployment.

Ray is imported only by the functions that need it.
"""

from .extract import collect, extract, image_folder

__all__ = ["extract", "collect", "image_folder"]
