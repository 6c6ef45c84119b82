"""Where images come from: files and folders, WebDataset shards, Parquet/Arrow tables, Hugging Face datasets.

Each source yields items with a stable ``key`` (file: resolved path; shard: shard + sample key; table: key
column or row number) and the image (a path, bytes or a decoded image).
"""
