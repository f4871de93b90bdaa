"""TMDB: the API client, discovery strategies, genre names and the scrape run."""
