"""twinbill ingest gateway: EnOS measurement points over MQTT, durable on RabbitMQ before the 200."""
