"""Takes frontend user events over HTTP and publishes them to Kafka; the faust archiver backs every raw record up to MongoDB."""

__version__ = "0.1.0"
