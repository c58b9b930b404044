"""Sources that publish validated events to Kafka: a small base contract, one module each."""
