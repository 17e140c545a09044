"""Stream archiver (faust-streaming): every raw Kafka record backed up to MongoDB."""

__version__ = "0.1.0"
