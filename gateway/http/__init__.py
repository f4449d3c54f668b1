"""Everything that answers an HTTP request: webhooks, the API and its OpenAPI document."""
