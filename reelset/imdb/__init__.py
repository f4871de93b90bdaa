"""IMDb's official datasets: download, TSV parsing, import, and cinemagoer's s3 database."""
