"""Kafka handlers of svc_cart: none yet. The cart consumes no topic; it only
publishes `cart.events` through the outbox relay wired in main.py. Prices
and item states are read live from the catalog on every cart read, so no
`catalog.items` consumer is needed to keep carts current."""
