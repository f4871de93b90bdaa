"""The one HTTP transport: the pooled ``requests`` session, the retry policy, the limiter."""
